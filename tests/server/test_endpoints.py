"""Embeddings, models, health, readiness and metrics."""

from __future__ import annotations

import base64
import struct

import httpx

from tests.support import chat_body


async def test_embeddings_string_and_list(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    one = await client.post(
        "/v1/embeddings",
        json={"model": "text-embedding-3-small", "input": "hello", "encoding_format": "float"},
        headers=auth,
    )
    assert one.status_code == 200, one.text
    assert len(one.json()["data"]) == 1
    many = await client.post(
        "/v1/embeddings",
        json={
            "model": "text-embedding-3-small",
            "input": ["hello", "world"],
            "encoding_format": "float",
        },
        headers=auth,
    )
    data = many.json()["data"]
    assert [d["index"] for d in data] == [0, 1]
    assert data[0]["embedding"] == one.json()["data"][0]["embedding"]
    assert many.json()["usage"]["prompt_tokens"] > 0
    assert many.headers["x-thrifty-model"] == "text-embedding-3-small"


async def test_embeddings_base64_passes_through(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    floats = await client.post(
        "/v1/embeddings",
        json={"model": "text-embedding-3-small", "input": "hello", "encoding_format": "float"},
        headers=auth,
    )
    b64 = await client.post(
        "/v1/embeddings",
        json={"model": "text-embedding-3-small", "input": "hello", "encoding_format": "base64"},
        headers=auth,
    )
    raw = base64.b64decode(b64.json()["data"][0]["embedding"])
    vec = list(struct.unpack(f"<{len(raw) // 4}f", raw))
    expected = floats.json()["data"][0]["embedding"]
    assert len(vec) == len(expected)
    assert all(abs(a - b) < 1e-6 for a, b in zip(vec, expected, strict=True))


async def test_embeddings_bad_input(client: httpx.AsyncClient, auth: dict[str, str]) -> None:
    for body in (
        {"model": "text-embedding-3-small"},
        {"model": "text-embedding-3-small", "input": []},
        {"model": "text-embedding-3-small", "input": [1, "a"]},
        {"model": "text-embedding-3-small", "input": "x", "encoding_format": "hex"},
    ):
        resp = await client.post("/v1/embeddings", json=body, headers=auth)
        assert resp.status_code == 400, body
        assert resp.json()["error"]["type"] == "invalid_request_error"
    resp = await client.post("/v1/embeddings", json={"model": "gpt-4o", "input": "x"}, headers=auth)
    assert resp.status_code == 404


async def test_models_lists_configured_models_and_aliases(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    resp = await client.get("/v1/models", headers=auth)
    ids = {m["id"] for m in resp.json()["data"]}
    assert ids == {"gpt-4o-mini", "mini", "gpt-4o", "text-embedding-3-small"}
    one = await client.get("/v1/models/gpt-4o", headers=auth)
    assert one.json()["id"] == "gpt-4o"
    missing = await client.get("/v1/models/nope", headers=auth)
    assert missing.status_code == 404
    assert (await client.get("/v1/models")).status_code == 401


async def test_health_and_ready(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"


async def test_metrics_count_requests_tokens_and_latency(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    await client.post("/v1/chat/completions", json=chat_body("hi"), headers=auth)
    await client.post("/v1/chat/completions", json=chat_body(model="nope"), headers=auth)
    await client.post("/v1/chat/completions", json=chat_body("hey", stream=True), headers=auth)
    text = (await client.get("/metrics")).text
    assert (
        'thrifty_requests_total{endpoint="chat.completions",model="gpt-4o-mini",'
        'served_model="gpt-4o-mini",status="200"} 2.0'
    ) in text
    assert 'model="nope",served_model="",status="404"} 1.0' in text
    assert 'thrifty_tokens_total{kind="prompt",model="gpt-4o-mini"}' in text
    assert 'thrifty_tokens_total{kind="completion",model="gpt-4o-mini"}' in text
    assert "thrifty_request_latency_seconds_bucket" in text
    assert "thrifty_time_to_first_byte_seconds_count" in text
