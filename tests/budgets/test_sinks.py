"""Alert sinks against real local receivers: a webhook (aiohttp server capturing the JSON), an
SMTP server (a minimal one written here, spoken to by stdlib smtplib), the dispatcher that must
never raise, and the in-memory alert log."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiohttp import web
from pydantic import ValidationError

from thrifty.budgets import Alert, AlertEngine, BudgetSpec, BudgetUsage, period_window
from thrifty.budgets.alert_log import AlertLog, alert_json
from thrifty.budgets.sinks import (
    AlertDispatcher,
    EmailSink,
    LogSink,
    SinkError,
    SinksConfig,
    WebhookSink,
    build_dispatcher,
    slack_payload,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def make_alert(
    key: str = "k1", severity: str = "warning", kind: str = "budget_threshold", subject: str = "b"
) -> Alert:
    return Alert(
        kind,  # type: ignore[arg-type]
        severity,  # type: ignore[arg-type]
        subject,
        "2026-11",
        key,
        f"budget {subject} reached 80% of its limit",
        NOW,
        {"level": 0.8, "exhaust_at": NOW + timedelta(days=3), "limit_usd": 100.0},
    )


# -- a webhook receiver ------------------------------------------------------------------------


@dataclass
class Receiver:
    url: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in order, then 200


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()

    async def hook(request: web.Request) -> web.Response:
        rec.bodies.append(await request.json())
        rec.headers.append(dict(request.headers))
        status = rec.statuses.pop(0) if rec.statuses else 200
        return web.Response(status=status, text="ok" if status == 200 else "nope")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield rec
    finally:
        await runner.cleanup()


async def test_webhook_posts_slack_compatible_json(receiver: Receiver) -> None:
    sink = WebhookSink(receiver.url, 5.0, headers={"x-token": "s3cret"})
    try:
        await sink.send(make_alert())
    finally:
        await sink.aclose()
    [body] = receiver.bodies
    assert body["text"].startswith(":warning: [warning] budget b reached 80%")
    types = [b["type"] for b in body["blocks"]]
    assert types == ["header", "section", "section", "context"]
    assert body["blocks"][0]["text"]["type"] == "plain_text"
    assert body["blocks"][1]["text"] == {
        "type": "mrkdwn",
        "text": "budget b reached 80% of its limit",
    }
    fields = {f["text"].split("\n")[0]: f["text"] for f in body["blocks"][2]["fields"]}
    assert "*Severity*" in fields and "*exhaust_at*" in fields
    assert body["alert"]["dedup_key"] == "k1"
    assert body["alert"]["data"]["exhaust_at"] == (NOW + timedelta(days=3)).isoformat()
    assert receiver.headers[0]["x-token"] == "s3cret"


async def test_webhook_retries_5xx_but_not_4xx(receiver: Receiver) -> None:
    sink = WebhookSink(receiver.url, 5.0, retries=1, backoff_s=0.01, include_alert=False)
    try:
        receiver.statuses[:] = [503]
        await sink.send(make_alert())
        assert len(receiver.bodies) == 2 and "alert" not in receiver.bodies[0]
        receiver.statuses[:] = [400]
        with pytest.raises(SinkError, match="400"):
            await sink.send(make_alert())
        assert len(receiver.bodies) == 3
        receiver.statuses[:] = [500, 500]
        with pytest.raises(SinkError, match="500"):
            await sink.send(make_alert())
    finally:
        await sink.aclose()


async def test_webhook_unreachable_is_a_sink_error() -> None:
    sink = WebhookSink("http://127.0.0.1:9/hook", 1.0, retries=0)
    try:
        with pytest.raises(SinkError, match="unreachable"):
            await sink.send(make_alert())
    finally:
        await sink.aclose()


# -- a minimal SMTP server ---------------------------------------------------------------------


@dataclass
class Mailbox:
    port: int = 0
    messages: list[tuple[str, list[str], Message]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)


async def _smtp_session(
    box: Mailbox, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    def say(line: str) -> None:
        writer.write(line.encode() + b"\r\n")

    say("220 localhost test SMTP")
    sender, rcpts = "", list[str]()
    while line := (await reader.readline()).decode().rstrip("\r\n"):
        verb = line.split(" ", 1)[0].upper()
        if verb in ("EHLO", "HELO"):
            say("250-localhost")
            say("250-AUTH PLAIN")
            say("250 8BITMIME")
        elif verb == "AUTH":
            _, user, _ = base64.b64decode(line.split()[2]).split(b"\0")
            box.logins.append(user.decode())
            say("235 2.7.0 Authentication successful")
        elif verb == "MAIL":
            sender, rcpts = line.split(":", 1)[1].strip(" <>"), []
            say("250 OK")
        elif verb == "RCPT":
            rcpts.append(line.split(":", 1)[1].strip(" <>"))
            say("250 OK")
        elif verb == "DATA":
            say("354 End data with <CR><LF>.<CR><LF>")
            data = await reader.readuntil(b"\r\n.\r\n")
            box.messages.append((sender, rcpts, message_from_bytes(data[:-5])))
            say("250 OK: queued")
        elif verb == "QUIT":
            say("221 Bye")
            await writer.drain()
            break
        else:
            say("250 OK")
        await writer.drain()
    writer.close()


@pytest.fixture
async def mailbox() -> AsyncIterator[Mailbox]:
    box = Mailbox()
    server = await asyncio.start_server(lambda r, w: _smtp_session(box, r, w), "127.0.0.1", 0)
    box.port = server.sockets[0].getsockname()[1]
    try:
        yield box
    finally:
        server.close()
        await server.wait_closed()


async def test_email_is_delivered_over_smtp(mailbox: Mailbox) -> None:
    sink = EmailSink(
        "127.0.0.1",
        mailbox.port,
        "thrifty@example.com",
        ["ops@example.com", "fin@example.com"],
        username="alerts",
        password="pw",
    )
    await sink.send(make_alert(severity="critical"))
    [(sender, rcpts, msg)] = mailbox.messages
    assert sender == "thrifty@example.com"
    assert rcpts == ["ops@example.com", "fin@example.com"]
    assert mailbox.logins == ["alerts"]
    assert msg["Subject"] == "[thrifty] CRITICAL: budget b reached 80% of its limit"
    body = msg.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert "kind:     budget_threshold" in body and '"dedup_key": "k1"' in body


async def test_email_failure_is_a_sink_error() -> None:
    sink = EmailSink("127.0.0.1", 9, "a@b.c", ["d@e.f"], timeout_s=2)
    with pytest.raises(SinkError, match=r"127\.0\.0\.1:9"):
        await sink.send(make_alert())
    with pytest.raises(ValueError, match="recipient"):
        EmailSink("127.0.0.1", 25, "a@b.c", [])


# -- the dispatcher ----------------------------------------------------------------------------


class Boom:
    name = "boom"

    def accepts(self, alert: Alert) -> bool:
        return True

    async def send(self, alert: Alert) -> None:
        raise RuntimeError("sink exploded")

    async def aclose(self) -> None:
        raise RuntimeError("close exploded too")


class Hang(Boom):
    name = "hang"

    async def send(self, alert: Alert) -> None:
        await asyncio.sleep(60)


class Collect(Boom):
    name = "collect"

    def __init__(self) -> None:
        self.got: list[str] = []

    async def send(self, alert: Alert) -> None:
        self.got.append(alert.dedup_key)

    async def aclose(self) -> None:
        return None


async def test_dispatcher_swallows_sink_errors_and_timeouts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = Collect()
    disp = AlertDispatcher([Boom(), Hang(), good, Collect()], timeout_s=0.2)
    with caplog.at_level(logging.WARNING, logger="thrifty.alerts"):
        [rec] = await disp.dispatch([make_alert()])
    assert good.got == ["k1"]
    assert rec.deliveries["collect"] == "sent" and rec.deliveries["collect#2"] == "sent"
    assert rec.deliveries["boom"].startswith("error: sink exploded")
    assert rec.deliveries["hang"].startswith("error")
    assert disp.failures == {"boom": 1, "hang": 1}
    assert "alert sink boom failed for k1" in caplog.text
    await disp.aclose()  # a sink failing to close is logged, not raised


async def test_submit_delivers_in_the_background_and_drops_when_full() -> None:
    good = Collect()
    disp = AlertDispatcher([good], queue_size=2)
    disp.submit([make_alert("a"), make_alert("b"), make_alert("c")])  # never waits
    assert disp.dropped == 1
    assert len(disp.log) == 3  # recorded even when delivery was dropped
    await disp.flush(5)
    assert good.got == ["a", "b"]
    assert disp.log.entries()[-1].deliveries == {"collect": "sent"}
    disp.submit([make_alert("d")])
    await disp.aclose()
    assert good.got == ["a", "b", "d"]


async def test_engine_dedup_then_delivery_to_a_real_webhook(receiver: Receiver) -> None:
    """One alert per subject and period, end to end: engine → dispatcher → webhook."""
    spec = BudgetSpec(id="acme", scope="tenant", subject="acme", limit_usd=10.0)
    window = period_window(spec, NOW)
    engine = AlertEngine()
    disp = build_dispatcher(SinksConfig(log=False, webhooks=({"url": receiver.url},)))  # type: ignore[arg-type]
    try:
        for spent in (5_500_000, 5_600_000, 8_100_000, 8_200_000):
            usage = BudgetUsage("acme", window.window_id, spent_micros=spent)
            await disp.dispatch(engine.budget(spec, window, usage, NOW + timedelta(days=10)))
    finally:
        await disp.aclose()
    levels = [
        b["alert"]["data"]["level"]
        for b in receiver.bodies
        if b["alert"]["kind"] == "budget_threshold"
    ]
    assert levels == [0.5, 0.8]
    assert [r.alert.dedup_key for r in disp.log.entries(kind="budget_threshold")] == [
        f"budget_threshold:acme:{window.window_id}:0.8",
        f"budget_threshold:acme:{window.window_id}:0.5",
    ]


async def test_log_sink_writes_a_structured_line(caplog: pytest.LogCaptureFixture) -> None:
    sink = LogSink("warning")
    assert not sink.accepts(make_alert(severity="info"))
    with caplog.at_level(logging.INFO, logger="thrifty.alerts"):
        await sink.send(make_alert(severity="critical"))
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert record.alert["dedup_key"] == "k1"  # type: ignore[attr-defined]
    assert '"kind":"budget_threshold"' in record.getMessage()


# -- the alert log and the config --------------------------------------------------------------


def test_alert_log_state_filters_and_bound() -> None:
    log = AlertLog(max_entries=3)
    first = log.add(make_alert("a", subject="x"))
    assert log.add(make_alert("a", subject="x")) is first  # same dedup key: same record
    log.add(make_alert("b", subject="y", kind="spend_anomaly"))
    log.add(make_alert("c", subject="x"))
    assert log.resolve(kind="budget_threshold", subject="x", reason="new period", at=NOW) == 2
    assert log.resolve(kind="budget_threshold", subject="x") == 0  # already resolved
    assert [r.alert.dedup_key for r in log.entries(state="firing")] == ["b"]
    assert [r.alert.dedup_key for r in log.entries(subject="x")] == ["c", "a"]
    assert len(log.entries(limit=1)) == 1
    doc = first.to_json()
    assert doc["state"] == "resolved" and doc["resolution"] == "new period"
    assert doc["resolved_at"] == NOW.isoformat() and doc["fired_at"] == NOW.isoformat()
    log.add(make_alert("d"))
    assert len(log) == 3 and "a" not in [r.alert.dedup_key for r in log.entries()]
    assert log.add(make_alert("a")) is not first  # evicted: a new record


def test_sinks_config_builds_and_validates() -> None:
    cfg = SinksConfig.model_validate(
        {
            "webhooks": [{"url": "https://hooks.slack.com/services/x", "kinds": ["quota"]}],
            "emails": [
                {
                    "host": "smtp.example.com",
                    "port": 587,
                    "sender": "t@example.com",
                    "recipients": ["ops@example.com"],
                    "username": "u",
                    "password": "p",
                    "starttls": True,
                }
            ],
            "history": 50,
        }
    )
    disp = build_dispatcher(cfg)
    assert [s.name for s in disp.sinks] == ["log", "webhook", "email"]
    webhook, email = disp.sinks[1], disp.sinks[2]
    assert not webhook.accepts(make_alert()) and webhook.accepts(make_alert(kind="quota"))
    assert not email.accepts(make_alert(severity="info"))
    assert isinstance(email, EmailSink) and email.starttls and not email.use_ssl
    for bad in (
        {"webhooks": [{"url": "ftp://x"}]},
        {"emails": [{"host": "h", "sender": "s", "recipients": []}]},
        {
            "emails": [
                {"host": "h", "sender": "s", "recipients": ["r"], "ssl": True, "starttls": True}
            ]
        },
        {"emails": [{"host": "h", "sender": "s", "recipients": ["r"], "password": "p"}]},
        {"webhooks": [{"url": "http://x", "kinds": ["nope"]}]},
    ):
        with pytest.raises(ValidationError):
            SinksConfig.model_validate(bad)


def test_payloads_are_plain_json() -> None:
    doc = alert_json(make_alert())
    assert doc["at"] == NOW.isoformat() and isinstance(doc["data"]["exhaust_at"], str)
    assert slack_payload(make_alert(severity="info"))["text"].startswith(":information_source:")
