"""Where alerts go: a log line, a webhook (Slack-compatible JSON), email (SMTP), and the
in-memory ``AlertLog`` (``alert_log.py``) behind ``GET /admin/alerts``.

``AlertDispatcher`` hands each alert to every sink that accepts it (by severity and kind),
concurrently and each under a timeout. It never raises: a failing sink is logged and counted,
and ``submit`` queues alerts for a background task, so delivery never delays or breaks the
request that raised them (a full queue drops alerts, logged). The alerts themselves come from
``thrifty.budgets.alerts.AlertEngine``, which fires each one once per subject and period.

This module imports nothing from the rest of ``thrifty.budgets`` at run time, so
``SinksConfig`` can be mounted into ``AlertConfig`` without an import cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import smtplib
import ssl as _ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, Literal, Protocol

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    import aiohttp

    from thrifty.budgets.alerts import Alert

from thrifty.budgets.alert_log import AlertLog, AlertRecord, alert_json, plain_value

log = logging.getLogger("thrifty.alerts")

Severity = Literal["info", "warning", "critical"]
AlertKindName = Literal[
    "budget_threshold", "budget_forecast", "spend_anomaly", "quota", "circuit_open"
]
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
_LOG_LEVEL = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.ERROR}
_EMOJI = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}


class AlertSink(Protocol):
    name: str

    def accepts(self, alert: Alert) -> bool: ...

    async def send(self, alert: Alert) -> None: ...

    async def aclose(self) -> None: ...


class _Filtered:
    """Severity and kind filter shared by the sinks (``kinds`` empty: every kind)."""

    name = "sink"

    def __init__(self, min_severity: Severity = "info", kinds: Iterable[str] = ()) -> None:
        self.min_rank = SEVERITY_RANK[min_severity]
        self.kinds = frozenset(kinds)

    def accepts(self, alert: Alert) -> bool:
        if SEVERITY_RANK.get(alert.severity, 2) < self.min_rank:
            return False
        return not self.kinds or alert.kind in self.kinds

    async def aclose(self) -> None:
        return None


class LogSink(_Filtered):
    """One structured line per alert on the ``thrifty.alerts`` logger: the message, then the
    alert as JSON; the record also carries it as ``record.alert`` for JSON log formatters.
    Critical alerts log at ERROR, warnings at WARNING, the rest at INFO."""

    name = "log"

    async def send(self, alert: Alert) -> None:
        doc = alert_json(alert)
        log.log(
            _LOG_LEVEL.get(alert.severity, logging.WARNING),
            "alert %s %s",
            alert.message,
            orjson.dumps(doc).decode(),
            extra={"alert": doc},
        )


class SinkError(Exception):
    """A sink could not deliver an alert (logged by the dispatcher)."""


def slack_payload(alert: Alert, *, include_alert: bool = True) -> dict[str, Any]:
    """Slack incoming-webhook JSON: ``text`` (the notification fallback) and Block Kit
    ``blocks``; with ``include_alert`` the alert itself under ``alert`` for other receivers
    (Slack ignores it)."""
    title = f"{alert.kind.replace('_', ' ').capitalize()}: {alert.subject}"
    fields = [
        {"type": "mrkdwn", "text": f"*Severity*\n{alert.severity}"},
        {"type": "mrkdwn", "text": f"*Period*\n{alert.period}"},
    ]
    for k, v in list(alert.data.items())[:8]:
        if v is not None:
            fields.append({"type": "mrkdwn", "text": f"*{k}*\n{plain_value(v)}"[:2000]})
    payload: dict[str, Any] = {
        "text": f"{_EMOJI.get(alert.severity, '')} [{alert.severity}] {alert.message}".strip(),
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": alert.message[:3000]}},
            {"type": "section", "fields": fields[:10]},
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": f"thrifty · {alert.dedup_key} · {alert.at:%c %Z}"}
                ],
            },
        ],
    }
    if include_alert:
        payload["alert"] = alert_json(alert)
    return payload


class WebhookSink(_Filtered):
    """POSTs ``slack_payload(alert)`` to ``url`` (aiohttp, one session, ``timeout_s`` per
    attempt). A 5xx, 429 or connection error is retried ``retries`` times after ``backoff_s``;
    any other non-2xx answer is a ``SinkError`` at once."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        timeout_s: float = 5.0,
        *,
        headers: Mapping[str, str] | None = None,
        retries: int = 1,
        backoff_s: float = 0.5,
        include_alert: bool = True,
        min_severity: Severity = "info",
        kinds: Iterable[str] = (),
    ) -> None:
        super().__init__(min_severity, kinds)
        self.url = url
        self.timeout_s = timeout_s
        self.headers = dict(headers or {})
        self.retries = retries
        self.backoff_s = backoff_s
        self.include_alert = include_alert
        self._session: aiohttp.ClientSession | None = None

    async def send(self, alert: Alert) -> None:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            )
        body = orjson.dumps(slack_payload(alert, include_alert=self.include_alert))
        headers = {"content-type": "application/json", **self.headers}
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                async with self._session.post(self.url, data=body, headers=headers) as resp:
                    if 200 <= resp.status < 300:
                        return
                    text = (await resp.text(errors="replace"))[:200]
                    error = SinkError(f"webhook answered {resp.status}: {text}")
                    if last or not (resp.status >= 500 or resp.status == 429):
                        raise error
            except (aiohttp.ClientError, TimeoutError) as exc:
                if last:
                    raise SinkError(f"webhook {self.url} unreachable: {exc!r}") from exc
            await asyncio.sleep(self.backoff_s * (attempt + 1))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class EmailSink(_Filtered):
    """One email per alert over SMTP (stdlib ``smtplib`` in a worker thread, ``timeout_s`` on
    the socket). ``starttls`` upgrades a plain connection; ``ssl`` connects with TLS from
    the start (port 465); ``username`` / ``password`` log in when given."""

    name = "email"

    def __init__(
        self,
        host: str,
        port: int = 25,
        sender: str = "thrifty@localhost",
        recipients: Iterable[str] = (),
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        ssl: bool = False,
        timeout_s: float = 10.0,
        min_severity: Severity = "warning",
        kinds: Iterable[str] = (),
    ) -> None:
        super().__init__(min_severity, kinds)
        self.host, self.port, self.sender = host, port, sender
        self.recipients = list(recipients)
        if not self.recipients:
            raise ValueError("an email sink needs at least one recipient")
        self.username, self.password = username, password
        self.starttls, self.use_ssl, self.timeout_s = starttls, ssl, timeout_s

    def message(self, alert: Alert) -> EmailMessage:
        msg = EmailMessage()
        subject = " ".join(f"[thrifty] {alert.severity.upper()}: {alert.message}".split())
        msg["Subject"] = subject[:250]
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        lines = [alert.message, "", f"kind:     {alert.kind}", f"subject:  {alert.subject}"]
        lines += [f"period:   {alert.period}", f"at:       {alert.at.isoformat()}", ""]
        lines += [f"{k}: {plain_value(v)}" for k, v in alert.data.items()]
        lines += ["", orjson.dumps(alert_json(alert), option=orjson.OPT_INDENT_2).decode()]
        msg.set_content("\n".join(lines))
        return msg

    def _send_sync(self, msg: EmailMessage) -> None:
        smtp: smtplib.SMTP
        if self.use_ssl:
            ctx = _ssl.create_default_context()
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s, context=ctx)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        with smtp:
            if self.starttls and not self.use_ssl:
                smtp.starttls(context=_ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(msg)

    async def send(self, alert: Alert) -> None:
        try:
            await asyncio.to_thread(self._send_sync, self.message(alert))
        except (smtplib.SMTPException, OSError) as exc:
            raise SinkError(f"email via {self.host}:{self.port} failed: {exc!r}") from exc


# -- the alert log ----------------------------------------------------------------------------


# -- the dispatcher ---------------------------------------------------------------------------


class AlertDispatcher:
    """Sends alerts to every accepting sink (concurrently, each under ``timeout_s``) and
    records them in ``log``. Never raises; ``failures`` counts errors per sink, ``dropped``
    the alerts a full queue refused."""

    def __init__(
        self,
        sinks: Iterable[AlertSink],
        log: AlertLog | None = None,
        *,
        timeout_s: float = 30.0,
        queue_size: int = 1000,
    ) -> None:
        self.sinks = list(sinks)
        self.log = log if log is not None else AlertLog()
        self.timeout_s = timeout_s
        self.failures: dict[str, int] = {}
        self.dropped = 0
        self._queue: asyncio.Queue[Alert] = asyncio.Queue(maxsize=queue_size)
        self._worker: asyncio.Task[None] | None = None
        # Set in scale-out mode (``alert_claims``): False means another replica sends it.
        self.claim: Callable[[Alert], Awaitable[bool]] | None = None

    async def _one(self, sink: AlertSink, alert: Alert) -> str:
        try:
            await asyncio.wait_for(sink.send(alert), self.timeout_s)
            return "sent"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a sink must never break the caller
            self.failures[sink.name] = self.failures.get(sink.name, 0) + 1
            log.warning("alert sink %s failed for %s: %r", sink.name, alert.dedup_key, exc)
            return f"error: {exc}"[:300]

    async def _claimed(self, alert: Alert) -> bool:
        if self.claim is None:
            return True
        try:
            return await self.claim(alert)
        except Exception:  # a claim that cannot be made must not cost the alert
            log.exception("alert claim failed for %s; sending it", alert.dedup_key)
            return True

    async def deliver(self, alert: Alert) -> dict[str, str]:
        """Send one alert to every sink that accepts it; ``{sink name: "sent" | "error: …"}``
        (a second sink of one kind is named ``webhook#2``, …). With ``claim`` set, an alert
        another replica claimed first is not sent: ``{"*": "sent by another replica"}``."""
        chosen = [s for s in self.sinks if s.accepts(alert)]
        if chosen and not await self._claimed(alert):
            return {"*": "sent by another replica"}
        results = await asyncio.gather(*(self._one(s, alert) for s in chosen))
        out: dict[str, str] = {}
        for sink, result in zip(chosen, results, strict=True):
            n = sum(1 for k in out if k.partition("#")[0] == sink.name)
            out[sink.name if n == 0 else f"{sink.name}#{n + 1}"] = result
        return out

    async def dispatch(self, alerts: Iterable[Alert]) -> list[AlertRecord]:
        """Record and deliver now (awaiting the sinks); never raises."""
        out = []
        for alert in alerts:
            rec = self.log.add(alert)
            rec.deliveries.update(await self.deliver(alert))
            out.append(rec)
        return out

    def submit(self, alerts: Iterable[Alert]) -> None:
        """Record now, deliver in the background (for the request path; call inside a
        running event loop). Never raises, never waits."""
        for alert in alerts:
            try:
                self.log.add(alert)
                self._queue.put_nowait(alert)
            except asyncio.QueueFull:
                self.dropped += 1
                log.warning("alert queue full: dropped %s", alert.dedup_key)
            except Exception:  # pragma: no cover - defensive: never into the request path
                log.exception("could not queue alert %s", getattr(alert, "dedup_key", alert))
        if self._worker is None or self._worker.done():
            with contextlib.suppress(RuntimeError):  # no running loop: delivered at aclose
                self._worker = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            alert = await self._queue.get()
            try:
                self.log.add(alert).deliveries.update(await self.deliver(alert))
            except Exception:  # pragma: no cover - deliver() does not raise
                log.exception("alert delivery failed")
            finally:
                self._queue.task_done()

    async def flush(self, timeout_s: float | None = None) -> None:
        """Wait until every queued alert was delivered (or ``timeout_s`` passed)."""
        if not self._queue.empty() and (self._worker is None or self._worker.done()):
            self._worker = asyncio.get_running_loop().create_task(self._run())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout_s)

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued (within ``timeout_s``), stop, close the sinks."""
        await self.flush(timeout_s)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        for sink in self.sinks:
            try:
                await sink.aclose()
            except Exception:
                log.exception("closing alert sink %s failed", sink.name)


# -- configuration ----------------------------------------------------------------------------


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WebhookSinkConfig(_Frozen):
    url: str
    timeout_s: float = Field(5.0, gt=0, le=120)
    headers: dict[str, str] = Field(default_factory=dict)
    retries: int = Field(1, ge=0, le=5)
    include_alert: bool = True
    min_severity: Severity = "info"
    kinds: tuple[AlertKindName, ...] = ()

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value


class EmailSinkConfig(_Frozen):
    host: str
    port: int = Field(25, ge=1, le=65535)
    sender: str
    recipients: tuple[str, ...] = Field(min_length=1)
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    ssl: bool = False
    timeout_s: float = Field(10.0, gt=0, le=120)
    min_severity: Severity = "warning"
    kinds: tuple[AlertKindName, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> EmailSinkConfig:
        if self.starttls and self.ssl:
            raise ValueError("use starttls (upgrade a plain connection) or ssl, not both")
        if self.password is not None and not self.username:
            raise ValueError("a password needs a username")
        return self


class SinksConfig(_Frozen):
    """Alert delivery (``budgets.alerts.sinks``): the log sink, webhooks, email; ``history``
    alerts are kept for ``GET /admin/alerts``."""

    log: bool = True
    log_min_severity: Severity = "info"
    webhooks: tuple[WebhookSinkConfig, ...] = ()
    emails: tuple[EmailSinkConfig, ...] = ()
    history: int = Field(1000, ge=1, le=1_000_000)
    queue_size: int = Field(1000, ge=1)
    timeout_s: float = Field(30.0, gt=0)


def build_sinks(config: SinksConfig) -> list[AlertSink]:
    sinks: list[AlertSink] = [LogSink(config.log_min_severity)] if config.log else []
    sinks += [WebhookSink(**w.model_dump()) for w in config.webhooks]
    sinks += [EmailSink(**e.model_dump()) for e in config.emails]
    return sinks


def build_dispatcher(config: SinksConfig | None = None) -> AlertDispatcher:
    """The dispatcher (with its ``AlertLog``) for a config; the gateway's ``alerts`` is
    ``dispatcher.log``."""
    cfg = config or SinksConfig()
    return AlertDispatcher(
        build_sinks(cfg),
        AlertLog(cfg.history),
        timeout_s=cfg.timeout_s,
        queue_size=cfg.queue_size,
    )
