"""Every error case: OpenAI-shaped body, fitting status, never a 500 for bad input."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest

from tests.support import chat_body, gateway_config
from thrifty.server.app import create_app
from thrifty.testing import FakeOpenAIServer


def assert_openai_error(resp: httpx.Response, status: int, code: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"]
    if code is not None:
        assert err["code"] == code
    assert resp.headers["x-thrifty-request-id"].startswith("req_")
    return err


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b"{not json", None),
        (b"", None),
        (b"[1, 2]", None),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "model"),
        (b'{"model": 5, "messages": [{"role": "user", "content": "hi"}]}', "model"),
        (b'{"model": "gpt-4o-mini"}', "messages"),
        (b'{"model": "gpt-4o-mini", "messages": []}', "messages"),
        (b'{"model": "gpt-4o-mini", "messages": "hi"}', "messages"),
        (
            b'{"model": "gpt-4o-mini", "messages": [{"role": "wizard", "content": "x"}]}',
            "messages[0].role",
        ),
        (
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": 3}]}',
            "messages[0].content",
        ),
        (
            b'{"model": "gpt-4o-mini", "messages": [{"role": "tool", "content": "x"}]}',
            "messages[0].tool_call_id",
        ),
        (
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}',
            "temperature",
        ),
        (
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "temperature": 3}',
            "temperature",
        ),
        (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "n": 0}', "n"),
        (
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1.5}',
            "max_tokens",
        ),
        (
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
            "stream",
        ),
        (
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stop": [1]}',
            "stop",
        ),
        (
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {}}]}',
            "tools[0].function.name",
        ),
        (
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "yaml"}}',
            "response_format.type",
        ),
        (
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": true}}',
            "stream_options",
        ),
    ],
)
async def test_bad_input_is_400(
    client: httpx.AsyncClient, auth: dict[str, str], raw: bytes, param: str | None
) -> None:
    resp = await client.post(
        "/v1/chat/completions", content=raw, headers={**auth, "content-type": "application/json"}
    )
    err = assert_openai_error(resp, 400)
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param


async def test_bad_thrifty_headers_are_400(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    for name, value in (
        ("x-thrifty-tags", "novalue"),
        ("x-thrifty-priority", "urgent"),
        ("x-thrifty-cache", "maybe"),
    ):
        resp = await client.post(
            "/v1/chat/completions", json=chat_body(), headers={**auth, name: value}
        )
        assert assert_openai_error(resp, 400)["param"] == name


async def test_oversized_body_is_413(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    config = gateway_config(fake.base_url, tmp_path, server={"max_body_bytes": 2048})
    app = create_app(config)
    async with app.gateway:
        key, _ = await app.gateway.keys.create("acme")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            resp = await c.post(
                "/v1/chat/completions",
                json=chat_body("x" * 5000),
                headers={"authorization": f"Bearer {key}"},
            )
            assert_openai_error(resp, 413, "request_too_large")

            async def chunks():  # no content-length: the limit applies while reading
                for _ in range(10):
                    yield b"x" * 1000

            resp = await c.post(
                "/v1/chat/completions", content=chunks(), headers={"authorization": f"Bearer {key}"}
            )
            assert_openai_error(resp, 413, "request_too_large")


async def test_unknown_model_is_404(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    resp = await client.post("/v1/chat/completions", json=chat_body(model="gpt-9"), headers=auth)
    err = assert_openai_error(resp, 404, "model_not_found")
    assert err["param"] == "model"
    # an embedding model is not a chat model
    resp = await client.post(
        "/v1/chat/completions", json=chat_body(model="text-embedding-3-small"), headers=auth
    )
    assert_openai_error(resp, 404, "model_not_found")


async def test_missing_bad_and_revoked_keys_are_401(
    client: httpx.AsyncClient, app, api_key: str
) -> None:
    resp = await client.post("/v1/chat/completions", json=chat_body())
    assert_openai_error(resp, 401, "invalid_api_key")
    resp = await client.post(
        "/v1/chat/completions", json=chat_body(), headers={"authorization": "Bearer tk-nope"}
    )
    assert_openai_error(resp, 401, "invalid_api_key")
    records = await app.gateway.keys.list()
    await app.gateway.keys.revoke(records[0].id)
    resp = await client.post(
        "/v1/chat/completions", json=chat_body(), headers={"authorization": f"Bearer {api_key}"}
    )
    assert_openai_error(resp, 401, "invalid_api_key")


async def test_unknown_route_is_404(client: httpx.AsyncClient) -> None:
    assert_openai_error(await client.get("/v1/nothing"), 404, "unknown_route")


async def test_upstream_429_is_429_with_retry_after(
    client: httpx.AsyncClient, fake: FakeOpenAIServer, auth: dict[str, str]
) -> None:
    fake.set_fault("status=429;retry_after=7")
    resp = await client.post("/v1/chat/completions", json=chat_body(), headers=auth)
    assert_openai_error(resp, 429, "rate_limit_exceeded")
    assert resp.headers["retry-after"] == "7"


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_upstream_5xx_is_502(
    client: httpx.AsyncClient, fake: FakeOpenAIServer, auth: dict[str, str], status: int
) -> None:
    fake.set_fault(f"status={status}")
    resp = await client.post("/v1/chat/completions", json=chat_body(), headers=auth)
    assert_openai_error(resp, 502, "upstream_error")
    assert resp.headers["x-thrifty-model"] == "gpt-4o-mini"


async def test_upstream_400_keeps_its_status_and_message(
    client: httpx.AsyncClient, fake: FakeOpenAIServer, auth: dict[str, str]
) -> None:
    fake.set_fault("status=400;message=context too long")
    resp = await client.post("/v1/chat/completions", json=chat_body(), headers=auth)
    err = assert_openai_error(resp, 400)
    assert "context too long" in err["message"]


async def test_upstream_reset_is_502(
    client: httpx.AsyncClient, fake: FakeOpenAIServer, auth: dict[str, str]
) -> None:
    fake.set_fault("reset")
    resp = await client.post("/v1/chat/completions", json=chat_body(), headers=auth)
    assert_openai_error(resp, 502, "upstream_connection_error")


async def test_upstream_malformed_json_is_502(
    client: httpx.AsyncClient, fake: FakeOpenAIServer, auth: dict[str, str]
) -> None:
    fake.set_fault("malformed")
    resp = await client.post("/v1/chat/completions", json=chat_body(), headers=auth)
    assert_openai_error(resp, 502, "upstream_bad_response")


async def test_upstream_unreachable_is_502(tmp_path: Path) -> None:
    config = gateway_config("http://127.0.0.1:9/v1", tmp_path)
    app = create_app(config)
    async with app.gateway:
        key, _ = await app.gateway.keys.create("acme")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            resp = await c.post(
                "/v1/chat/completions", json=chat_body(), headers={"authorization": f"Bearer {key}"}
            )
    assert_openai_error(resp, 502, "upstream_connection_error")


async def test_upstream_timeouts_are_504(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    config = gateway_config(
        fake.base_url,
        tmp_path,
        provider={"timeouts": {"first_byte_s": 0.3, "stream_idle_s": 0.3}},
    )
    app = create_app(config)
    async with app.gateway:
        key, _ = await app.gateway.keys.create("acme")
        auth = {"authorization": f"Bearer {key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            fake.set_fault("timeout=3")
            resp = await c.post("/v1/chat/completions", json=chat_body(), headers=auth)
            assert_openai_error(resp, 504, "upstream_timeout")
            resp = await c.post("/v1/chat/completions", json=chat_body(stream=True), headers=auth)
            assert_openai_error(resp, 504, "upstream_timeout")
            # idle gap in the middle of a stream: the stream ends with an error event
            fake.set_fault("slow_stream=3")
            resp = await c.post("/v1/chat/completions", json=chat_body(stream=True), headers=auth)
            assert resp.status_code == 200
            last = resp.text.strip().split("\n\n")[-1]
            assert "[DONE]" not in resp.text
            assert orjson.loads(last[6:])["error"]["code"] == "upstream_timeout"


async def test_cut_stream_ends_with_error_event(
    client: httpx.AsyncClient, fake: FakeOpenAIServer, auth: dict[str, str]
) -> None:
    fake.set_fault("cut=3")
    resp = await client.post(
        "/v1/chat/completions", json=chat_body("a long story", stream=True), headers=auth
    )
    assert resp.status_code == 200
    frames = [f[6:] for f in resp.text.strip().split("\n\n")]
    assert "[DONE]" not in frames
    error = orjson.loads(frames[-1])["error"]
    assert error["code"] == "upstream_connection_error"
    assert len(frames) >= 2  # some content made it through before the cut


async def test_error_in_stream_before_first_byte_is_http_error(
    client: httpx.AsyncClient, fake: FakeOpenAIServer, auth: dict[str, str]
) -> None:
    fake.set_fault("status=503")
    resp = await client.post("/v1/chat/completions", json=chat_body(stream=True), headers=auth)
    assert_openai_error(resp, 502)
