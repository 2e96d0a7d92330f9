"""The demo's workload: a realistic mix of tenants, models, repeats, paraphrases, easy and hard
questions, pasted JSON records, streaming and not, sent over real HTTP."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

EASY = [
    "What is the capital of France?",
    "Convert 5 kilometres to miles.",
    "What is 12 times 7?",
    "Give me a synonym for 'happy'.",
    "Translate 'good morning' into Spanish.",
    "How many days are in a leap year?",
    "What colour do you get by mixing blue and yellow?",
    "Spell 'necessary' backwards.",
]
HARD = [
    "Design a multi-region, active-active rate limiter for an API gateway. Discuss consistency, "
    "clock skew, failure modes and how you would test it.",
    "Prove that there are infinitely many primes, then explain how the proof generalises to "
    "primes of the form 4k+3.",
    "Write a Python function that merges overlapping intervals, analyse its complexity and give "
    "property-based tests for it.",
    "Compare event sourcing and CRUD for a banking ledger: trade-offs in auditability, "
    "performance, schema evolution and regulatory reporting.",
    "Explain how a transformer's attention scales with sequence length and three techniques "
    "that reduce the cost, with their accuracy trade-offs.",
]
PARAPHRASES = [
    ("How do I reset my password?", "What's the way to reset my password?"),
    ("What are your opening hours?", "When are you open?"),
    ("Can I get a refund for my order?", "Is it possible to have my order refunded?"),
    ("How do I cancel my subscription?", "What do I do to cancel my subscription?"),
]
# Records pasted into a question the way API and tool output usually arrive: pretty-printed JSON,
# which lossless compression minifies (the parsed value is unchanged).
RECORDS = [
    {
        "order_id": 48213,
        "status": "shipped",
        "carrier": "DHL",
        "items": [{"sku": "KB-104", "name": "Keyboard (QWERTZ)", "qty": 1, "price_eur": 89.0}],
        "shipping": {"eta": "2026-06-12", "address": {"city": "Berlin", "country": "DE"}},
    },
    {
        "ticket": "SUP-7781",
        "priority": "high",
        "customer": {"plan": "business", "seats": 40, "region": "eu-west"},
        "events": [
            {"at": "2026-05-02T09:14:00Z", "type": "opened", "by": "customer"},
            {"at": "2026-05-02T10:02:00Z", "type": "escalated", "by": "agent"},
        ],
    },
]
QUESTIONS_ON_RECORDS = [
    "Summarise this record for the customer in two sentences.",
    "What should support do next with this record?",
]
SYSTEM = "You are a concise, helpful assistant for a software company."
MODELS = [("gpt-4o", 0.35), ("auto", 0.3), ("gpt-4o-mini", 0.15), ("claude-sonnet-5-5", 0.2)]


@dataclass(slots=True)
class DemoRequest:
    tenant: str
    kind: str
    path: str
    body: dict[str, Any]
    stream: bool = False


@dataclass(slots=True)
class DemoResult:
    request: DemoRequest
    status: int
    latency_s: float
    headers: dict[str, str] = field(default_factory=dict)
    usage: dict[str, Any] | None = None
    error: str | None = None


def build_workload(n: int, tenants: list[str], seed: int) -> list[DemoRequest]:
    rng = random.Random(seed)
    models, weights = zip(*MODELS, strict=True)
    out: list[DemoRequest] = []
    repeat_pool: list[DemoRequest] = []
    for i in range(n):
        tenant = rng.choice(tenants)
        roll = rng.random()
        if i % 25 == 24:
            texts = rng.sample(EASY, 3)
            body: dict[str, Any] = {"model": "text-embedding-3-small", "input": texts}
            out.append(DemoRequest(tenant, "embedding", "/embeddings", body))
            continue
        if repeat_pool and roll < 0.25:
            prev = rng.choice(repeat_pool)
            out.append(DemoRequest(tenant, "repeat", prev.path, dict(prev.body), prev.stream))
            continue
        if roll < 0.40:
            kind, text = "paraphrase", rng.choice(rng.choice(PARAPHRASES))
        elif roll < 0.50:
            record = orjson.dumps(rng.choice(RECORDS), option=orjson.OPT_INDENT_2).decode()
            kind, text = "document", f"{rng.choice(QUESTIONS_ON_RECORDS)}\n\n{record}"
        elif roll < 0.75:
            kind, text = "easy", rng.choice(EASY)
        else:
            kind, text = "hard", rng.choice(HARD)
        body = {
            "model": rng.choices(models, weights)[0],
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}],
        }
        if kind == "hard":
            body["max_tokens"] = 400
        if kind != "hard":
            body["temperature"] = 0.2  # answers to easy questions are safe to reuse
        stream = rng.random() < 0.3
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        req = DemoRequest(tenant, kind, "/chat/completions", body, stream)
        repeat_pool.append(req)
        out.append(req)
    return out


async def _send(client: httpx.AsyncClient, key: str, req: DemoRequest) -> DemoResult:
    headers = {"authorization": f"Bearer {key}", "x-thrifty-tags": f"use_case={req.kind}"}
    t0 = time.perf_counter()
    try:
        if not req.stream:
            resp = await client.post(req.path, content=orjson.dumps(req.body), headers=headers)
            data = resp.json()
            return DemoResult(
                req,
                resp.status_code,
                time.perf_counter() - t0,
                dict(resp.headers),
                data.get("usage") if resp.status_code == 200 else None,
                None if resp.status_code == 200 else data.get("error", {}).get("message"),
            )
        usage = None
        async with client.stream(
            "POST", req.path, content=orjson.dumps(req.body), headers=headers
        ) as resp:
            async for line in resp.aiter_lines():
                if line.startswith("data: {"):
                    chunk = orjson.loads(line[6:])
                    usage = chunk.get("usage") or usage
        return DemoResult(
            req, resp.status_code, time.perf_counter() - t0, dict(resp.headers), usage
        )
    except httpx.HTTPError as exc:
        return DemoResult(req, 0, time.perf_counter() - t0, error=repr(exc))


async def drive(
    base_url: str, keys: dict[str, str], workload: list[DemoRequest], concurrency: int
) -> list[DemoResult]:
    results: list[DemoResult] = []
    queue: asyncio.Queue[DemoRequest] = asyncio.Queue()
    for req in workload:
        queue.put_nowait(req)
    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        with progress:
            task = progress.add_task("requests", total=len(workload))

            async def worker() -> None:
                while not queue.empty():
                    req = queue.get_nowait()
                    results.append(await _send(client, keys[req.tenant], req))
                    progress.advance(task)

            await asyncio.gather(*(worker() for _ in range(concurrency)))
    return results
