"""Virtual keys: hashed storage, principals, revocation, admin API, open mode."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from tests.support import ADMIN_KEY, chat_body, gateway_config
from thrifty.errors import AuthenticationError
from thrifty.server.app import ThriftyApp, create_app
from thrifty.testing import FakeOpenAIServer


async def test_database_never_holds_plaintext_key(app: ThriftyApp, tmp_path: Path) -> None:
    key, rec = await app.gateway.keys.create("acme", user="bob", tags={"team": "search"})
    async with app.gateway.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM api_keys"))).all()
    dump = repr(rows)
    assert key not in dump
    assert key[10:] not in dump  # not even the secret part
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("thrifty.db*"))
    assert key.encode() not in raw
    assert key[10:].encode() not in raw
    assert rec.prefix == key[:10]


async def test_principal_resolution(app: ThriftyApp) -> None:
    key, rec = await app.gateway.keys.create(
        "acme", user="bob", tier="enterprise", tags={"team": "search"}
    )
    p = await app.gateway.authenticate(key)
    assert (p.tenant, p.user, p.tier, p.tags, p.key_id) == (
        "acme",
        "bob",
        "enterprise",
        {"team": "search"},
        rec.id,
    )
    with pytest.raises(AuthenticationError):
        await app.gateway.authenticate(None)


async def test_bad_tier_rejected(app: ThriftyApp) -> None:
    from thrifty.errors import InvalidRequestError

    with pytest.raises(InvalidRequestError):
        await app.gateway.keys.create("acme", tier="gold")


async def test_admin_api_keys_lifecycle(client: httpx.AsyncClient) -> None:
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    assert (await client.get("/admin/keys")).status_code == 401
    bad = await client.get("/admin/keys", headers={"authorization": "Bearer wrong"})
    assert bad.status_code == 401
    created = await client.post(
        "/admin/keys", json={"tenant": "globex", "tier": "basic", "tags": {"f": "x"}}, headers=admin
    )
    assert created.status_code == 201
    key, key_id = created.json()["key"], created.json()["id"]
    user = {"authorization": f"Bearer {key}"}
    assert (
        await client.post("/v1/chat/completions", json=chat_body(), headers=user)
    ).status_code == 200
    listed = (await client.get("/admin/keys", headers=admin)).json()["data"]
    assert [k["id"] for k in listed] == [key_id]
    assert "key" not in listed[0]
    # a user key is not an admin key
    assert (await client.get("/admin/keys", headers=user)).status_code == 401
    revoked = await client.delete(f"/admin/keys/{key_id}", headers=admin)
    assert revoked.json()["revoked"] is True
    assert (
        await client.post("/v1/chat/completions", json=chat_body(), headers=user)
    ).status_code == 401
    assert (await client.delete("/admin/keys/key_nope", headers=admin)).status_code == 404
    bad_body = await client.post("/admin/keys", json={"tier": "basic"}, headers=admin)
    assert bad_body.status_code == 400


async def test_admin_api_disabled_without_admin_key(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    config = gateway_config(fake.base_url, tmp_path, server={"admin_key": None})
    app = create_app(config)
    async with app.gateway:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            resp = await c.get("/admin/keys", headers={"authorization": "Bearer anything"})
    assert resp.status_code == 403


async def test_key_cache_sees_cli_revocation_after_ttl(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    config = gateway_config(fake.base_url, tmp_path, keys={"cache_ttl_s": 60})
    app = create_app(config)
    async with app.gateway as gw:
        key, rec = await gw.keys.create("acme")
        assert (await gw.authenticate(key)).tenant == "acme"
        await gw.keys.revoke(rec.id)  # as the CLI would: no cache invalidation
        assert (await gw.authenticate(key)).tenant == "acme"  # cached within the TTL
        gw.auth.invalidate()
        with pytest.raises(AuthenticationError):
            await gw.authenticate(key)


async def test_open_mode_is_off_by_default_and_explicit(
    fake: FakeOpenAIServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = gateway_config(fake.base_url, tmp_path, server={"open_mode": True})
    app = create_app(config)
    async with app.gateway as gw:
        assert "OPEN MODE" in caplog.text
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            resp = await c.post("/v1/chat/completions", json=chat_body())
        assert resp.status_code == 200
        assert (await gw.authenticate(None)).tenant == "dev"
