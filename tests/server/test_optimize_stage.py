"""Token optimization in the request path: lossless compression by default (code blocks
untouched), pruning and response limits per route, savings booked as the compression lever."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support import chat_body, gateway_config
from thrifty.server.app import create_app
from thrifty.testing import FakeOpenAIServer

CODE = "```python\ndef f(x):\n    return   x  *  2\n```"


async def test_levers_through_the_api(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    optimize = {
        "response_limits_holdout": 0,  # every faq request capped (the holdout has its own tests)
        "rules": [
            {"use_case": "agent", "prune_budget_tokens": 120, "keep_last_turns": 1},
            {"use_case": "faq", "response_limits": True},
            {"use_case": "raw", "lossless": False},
        ],
    }
    app = create_app(gateway_config(fake.base_url, tmp_path, optimize=optimize))
    async with app.gateway as gw:
        key, _ = await gw.keys.create("acme", tier="basic")
        auth = {"authorization": f"Bearer {key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            spaced = (
                "Please   review    this code:\n\n\n\n" + CODE + '\n{ "a" :  1,  "b" : [1,  2] }'
            )
            r1 = await c.post("/v1/chat/completions", json=chat_body(spaced), headers=auth)
            sent = fake.requests[-1]["body"]["messages"][0]["content"]
            assert CODE in sent and "Please review this code:" in sent and len(sent) < len(spaced)
            row = await gw.request_record(r1.headers["x-thrifty-request-id"])
            assert row["saved_compression_usd"] > 0
            assert row["baseline_cost_usd"] > row["cost_usd"]

            await c.post(
                "/v1/chat/completions",
                json=chat_body(spaced),
                headers={**auth, "x-thrifty-tags": "use_case=raw"},
            )
            assert fake.requests[-1]["body"]["messages"][0]["content"] == spaced

            long_history = [
                {
                    "role": "user" if i % 2 == 0 else "assistant",
                    "content": f"turn {i} " + "blah " * 40,
                }
                for i in range(9)
            ]
            r3 = await c.post(
                "/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": long_history},
                headers={**auth, "x-thrifty-tags": "use_case=agent"},
            )
            assert r3.status_code == 200
            assert len(fake.requests[-1]["body"]["messages"]) < len(long_history)
            flags = (await gw.request_record(r3.headers["x-thrifty-request-id"]))["flags"]
            assert any(f.startswith("pruned:") for f in flags)

            await c.post(
                "/v1/chat/completions",
                json=chat_body("What is 2+2?"),
                headers={**auth, "x-thrifty-tags": "use_case=faq"},
            )
            assert fake.requests[-1]["body"]["max_tokens"] == 120  # simple x basic tier 0.8
