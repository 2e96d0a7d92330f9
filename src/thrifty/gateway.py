"""``Gateway``: the one core object the server, the CLI and library users call.

    async with Gateway(config) as gw:
        principal = await gw.authenticate("tk-...")
        answer = await gw.chat({"model": "gpt-4o-mini", "messages": [...]}, principal)

It owns every runtime resource (database engine, provider HTTP pools, metrics) and opens and
closes them in ``start``/``aclose``; nothing is global, so two gateways never share state.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from thrifty.budgets.manager import BudgetManager
from thrifty.budgets.quota import QuotaTracker
from thrifty.budgets.store import BudgetStore
from thrifty.cache.coalesce import SingleFlight
from thrifty.cache.tiered import TieredCache
from thrifty.config import FAKE_SOURCE, Config
from thrifty.db.engine import make_engine
from thrifty.db.migrate import upgrade
from thrifty.errors import ThriftyError
from thrifty.keys.auth import Authenticator
from thrifty.keys.principal import Principal
from thrifty.keys.store import KeyStore
from thrifty.ledger import reports
from thrifty.ledger.periods import Period, parse_period
from thrifty.ledger.recorder import LedgerRecorder
from thrifty.ledger.reports import ReportRow
from thrifty.ledger.writer import LedgerWriter
from thrifty.metrics import Metrics
from thrifty.pipeline.admission import AdmissionSettler, AdmissionStage
from thrifty.pipeline.budget import BudgetSettler, BudgetStage
from thrifty.pipeline.build import build_chat_pipeline, build_embeddings_pipeline
from thrifty.pipeline.cache import CachePolicy, CacheStage, CacheWriter
from thrifty.pipeline.context import RequestContext, new_request_id
from thrifty.pipeline.costing import Costing
from thrifty.pipeline.embeddings_cache import EmbeddingsCacheStage
from thrifty.pipeline.optimize import OptimizeStage
from thrifty.pipeline.outcome import Completed, Outcome
from thrifty.pipeline.record import MetricsRecorder, RouteMetricsRecorder
from thrifty.pipeline.response_limits import CapSavings
from thrifty.pipeline.shadow import ShadowSampler
from thrifty.pipeline.stage import Recorder
from thrifty.pricing import CostCalculator, PriceCatalog
from thrifty.providers.registry import ProviderRegistry
from thrifty.wire.openai import (
    ChatRequest,
    EmbeddingsRequest,
    chat_request_from_body,
    embeddings_request_from_body,
)

log = logging.getLogger("thrifty")

PRIORITIES = ("critical", "normal", "low")
UNAUTHENTICATED = Principal(tenant="(unauthenticated)")


class Gateway:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.metrics = Metrics()
        # Levers that can save money in this configuration; reports say "not enabled" for
        # the others. Each lever adds itself here when it is built and configured.
        self.enabled_levers: frozenset[str] = frozenset()
        self.registry = ProviderRegistry(config, on_breaker=self._breaker_changed)
        self.registry.on_upstream_headers = self.observe_upstream_headers
        self.catalog = PriceCatalog.load(config.pricing)
        self.calculator = CostCalculator(self.catalog)
        self.cap_savings = CapSavings(config.optimize.response_limits_holdout)
        self.costing = Costing(self.calculator, self.registry, self.metrics, self.cap_savings)
        self.recorders: list[Recorder] = [MetricsRecorder(self.metrics)]
        opt = config.optimize
        if opt.response_limits or any(r.response_limits for r in opt.rules):
            self.recorders.append(self.cap_savings)  # collects the held-out answers' lengths
        res = config.resilience
        self.redis: Any = None
        self.cache: TieredCache | None = None
        self.cache_stage: CacheStage | None = None
        self.semantic: Any = None
        if config.redis.url:
            import redis.asyncio as aioredis

            self.redis = aioredis.from_url(config.redis.url)
        if config.cache.enabled:
            self.cache = TieredCache(config.cache, config.redis, self.redis)
            flights = SingleFlight(self.redis, config.redis.prefix)
            self.cache_stage = CacheStage(self.cache, flights, config.cache)
            levers = {"cache"}
            if config.cache.semantic.enabled or any(r.semantic for r in config.cache.rules):
                from thrifty.pipeline.semantic import SemanticStage  # the 'semantic' extra

                self.semantic = SemanticStage(
                    self.cache_stage, self.cache, config.cache, config.redis, self.redis
                )
                levers.add("semantic_cache")
            self.recorders.append(CacheWriter(self.cache_stage, self.semantic))
            self.enabled_levers = frozenset(levers)
        if config.optimize.lossless or config.optimize.lossy or config.optimize.prune_budget_tokens:
            self.enabled_levers = self.enabled_levers | {"compression"}
        self.budgets = BudgetManager(config.budgets, config.redis)
        self.quotas = QuotaTracker(
            warning=config.budgets.alerts.quota_warning,
            critical=config.budgets.alerts.quota_critical,
        )
        self.budget_stage: BudgetStage | None = None
        self.budget_settler: BudgetSettler | None = None
        if config.budgets.enabled:
            self.budget_stage = BudgetStage(
                self.budgets.backend,
                self.budgets.index,
                self.calculator,
                self.registry,
                config.budgets.reservation_ttl_s,
            )
            self.budget_settler = BudgetSettler(self.budgets.backend, self.budgets)
            self.recorders.append(self.budget_settler)
        self.admission: AdmissionStage | None = None
        if config.budgets.rate_limits:
            from thrifty.budgets.ratelimit import InProcessRateLimiter

            self.admission = AdmissionStage(InProcessRateLimiter(), config.budgets.rate_limits)
            self.recorders.append(AdmissionSettler(self.admission))
            if self.admission.deployment_specs:
                self.registry.deployment_gate = self.admission.deployment_gate
        self.route_policies: dict[str, Any] = {}
        self.shadows: ShadowSampler | None = None
        if config.routing.groups:
            from thrifty.routing.policy import RoutePolicy

            for group in config.routing.groups:
                policy = RoutePolicy(group, self.catalog, self.calculator)
                self.route_policies[group.name] = policy
                if group.name == config.routing.default_group:
                    self.route_policies["auto"] = policy
            self.enabled_levers = self.enabled_levers | {"routing"}
            self.recorders.append(RouteMetricsRecorder(self.metrics, self.route_policies))
            self.shadows = ShadowSampler(self, self.route_policies)
            self.recorders.append(self.shadows)
            if self.cache_stage is not None:  # a group's answer depends on more than the body
                self.cache_stage.route_groups = dict(self.route_policies)
        self.chat_pipeline = build_chat_pipeline(
            self.registry,
            self.costing,
            self.recorders,
            res,
            self.cache_stage,
            self.semantic,
            self.budget_stage,
            self.admission,
            self.route_policies,
            OptimizeStage(config.optimize, self.cap_savings),
        )
        embeddings_cache = (
            EmbeddingsCacheStage(self.cache, CachePolicy(config.cache))
            if self.cache is not None
            else None
        )
        self.embeddings_pipeline = build_embeddings_pipeline(
            self.registry,
            self.costing,
            self.recorders,
            res,
            embeddings_cache,
            self.budget_stage,
            self.admission,
        )
        self.ledger: LedgerWriter | None = None

        self._engine: AsyncEngine | None = None
        self._keys: KeyStore | None = None
        self._auth: Authenticator | None = None
        self.started = False

    def _breaker_changed(self, deployment: str, old: str, new: str) -> None:
        level = logging.WARNING if new == "open" else logging.INFO
        log.log(level, "circuit breaker of %s: %s -> %s", deployment, old, new)
        self.metrics.set_breaker(deployment, new)
        if new == "open":
            b = self.budgets
            b.dispatcher.submit(b.engine.circuit_open(deployment, datetime.now(UTC)))

    def observe_upstream_headers(self, deployment: str, headers: dict[str, str]) -> None:
        """Learn a deployment's provider quota from its rate-limit headers; alert at 90/95%."""
        events = self.quotas.observe(deployment, headers)
        if events:
            b = self.budgets
            b.dispatcher.submit(b.engine.quota(events, datetime.now(UTC)))

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        if self.started:
            return
        if self.config.uses_fake_providers:
            log.warning(
                "*** Thrifty is running on the BUILT-IN FAKE PROVIDERS%s: answers are "
                "synthetic. Configure providers or set OPENAI_API_KEY for real ones. ***",
                "" if self.config.source == FAKE_SOURCE else f" ({self.config.source})",
            )
        self._engine = make_engine(self.config.database.url, echo=self.config.database.echo)
        await upgrade(self._engine)
        self._keys = KeyStore(self._engine)
        lc = self.config.ledger
        self.ledger = LedgerWriter(
            self._engine,
            lc.spill_path,
            batch_size=lc.batch_size,
            flush_interval_s=lc.flush_interval_s,
            queue_size=lc.queue_size,
            retry_interval_s=lc.retry_interval_s,
        )
        await self.ledger.start()
        self.recorders.append(LedgerRecorder(self.ledger, store_content=lc.store_content))
        for model, deployment in self.costing.unpriced_models():
            log.warning(
                "model %r (deployment %s) has no price in the catalog: its requests will be "
                "recorded as UNPRICED. Add it under pricing.overrides.",
                model,
                deployment,
            )
        self._auth = Authenticator(self._keys, self.config.server, self.config.keys.cache_ttl_s)
        await self.registry.open()
        self.budgets.on_change = self.refresh_budgets
        await self.budgets.start(BudgetStore(self._engine))
        self.refresh_budgets()
        self.budgets.watch_anomalies(self)
        if self.admission is not None and self.redis is not None:
            from thrifty.budgets.ratelimit import RedisRateLimiter

            self.admission.limiter = RedisRateLimiter(
                self.redis, self.config.redis.prefix, timeout_s=self.config.budgets.timeout_s
            )
        if self.cache is not None:
            await self.cache.start()
        if self.semantic is not None:
            await self.semantic.start()
        self.started = True

    @property
    def alerts(self) -> Any:
        return self.budgets.alerts

    def refresh_budgets(self) -> None:
        """Point the budget stage at the current backend and specs (after a change)."""
        if self.budget_stage is not None and self.budget_settler is not None:
            self.budget_stage.backend = self.budgets.backend
            self.budget_stage.index = self.budgets.index
            self.budget_settler.backend = self.budgets.backend

    async def aclose(self) -> None:
        if self.shadows is not None:
            await self.shadows.flush()
        await self.registry.aclose()
        if self.budget_settler is not None:
            await self.budget_settler.flush()
        await self.budgets.aclose()
        if self.semantic is not None:
            await self.semantic.aclose()
        if self.cache is not None:
            await self.cache.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        if self.ledger is not None:
            await self.ledger.aclose()  # flush every queued row before the engine goes
            self.recorders[:] = [r for r in self.recorders if not isinstance(r, LedgerRecorder)]
            self.ledger = None
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
        self.started = False

    async def __aenter__(self) -> Gateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- identity --------------------------------------------------------------------------
    @property
    def keys(self) -> KeyStore:
        assert self._keys is not None, "Gateway.start() has not run"
        return self._keys

    @property
    def auth(self) -> Authenticator:
        assert self._auth is not None, "Gateway.start() has not run"
        return self._auth

    @property
    def engine(self) -> AsyncEngine:
        assert self._engine is not None, "Gateway.start() has not run"
        return self._engine

    async def authenticate(self, token: str | None) -> Principal:
        return await self.auth.principal(token)

    # -- requests --------------------------------------------------------------------------
    async def chat(
        self,
        request: ChatRequest | dict[str, Any],
        principal: Principal,
        *,
        request_id: str | None = None,
        tags: dict[str, str] | None = None,
        priority: str = "normal",
        cache: str | None = None,
        endpoint: str = "chat.completions",
    ) -> Outcome:
        """Run a chat completion through the pipeline.

        Returns ``Completed`` (the OpenAI response in ``.data``) or a ``ChatStream`` to iterate
        (canonical chunks). Raises a ``ThriftyError``; every call is recorded exactly once.
        """
        if isinstance(request, dict):
            request = chat_request_from_body(request)
        ctx = RequestContext(
            request_id=request_id or new_request_id(),
            endpoint=endpoint,
            principal=principal,
            requested_model=request.model,
            body=request.body,
            stream=request.stream,
            include_usage=request.include_usage,
            # The key's tags win over the request's (cost attribution, cache rules); the
            # request may only add tags of other names.
            tags={**(tags or {}), **principal.tags},
            priority=priority,
            cache_directive=cache,
        )
        return await self.chat_pipeline.run(ctx)

    async def embeddings(
        self,
        request: EmbeddingsRequest | dict[str, Any],
        principal: Principal,
        *,
        request_id: str | None = None,
        tags: dict[str, str] | None = None,
        priority: str = "normal",
        cache: str | None = None,
    ) -> Completed:
        """Run an embeddings request through the pipeline; ``cache`` is the
        ``x-thrifty-cache`` directive (``off``, ``no-cache``, ``no-store``), as for ``chat``."""
        if isinstance(request, dict):
            request = embeddings_request_from_body(request)
        ctx = RequestContext(
            request_id=request_id or new_request_id(),
            endpoint="embeddings",
            principal=principal,
            requested_model=request.model,
            body=request.body,
            tags={**(tags or {}), **principal.tags},  # the key's tags win, as in ``chat``
            priority=priority,
            cache_directive=cache,
        )
        outcome = await self.embeddings_pipeline.run(ctx)
        assert isinstance(outcome, Completed)
        return outcome

    # -- ledger reads -------------------------------------------------------------------------
    async def usage(
        self,
        period: Period | str = "30d",
        group_by: list[str] | None = None,
        filters: dict[str, str] | None = None,
    ) -> tuple[list[ReportRow], ReportRow]:
        """Usage grouped as asked, plus the ungrouped total (queued rows are flushed first)."""
        if isinstance(period, str):
            period = parse_period(period)
        if self.ledger is not None:
            await self.ledger.flush()
        rows = await reports.usage_report(self.engine, period, group_by, filters)
        totals = await reports.usage_report(self.engine, period, [], filters)
        return rows, (totals[0] if totals else ReportRow(group={}))

    async def request_record(self, request_id: str) -> dict[str, Any] | None:
        if self.ledger is not None:
            await self.ledger.flush()
        return await reports.request_detail(self.engine, request_id)

    async def unpriced_seen(self, period: Period) -> list[dict[str, Any]]:
        if self.ledger is not None:
            await self.ledger.flush()
        return await reports.unpriced_models(self.engine, period)

    def record_rejected(
        self,
        request_id: str,
        endpoint: str,
        error: ThriftyError,
        principal: Principal | None,
        raw_body: bytes | None,
    ) -> None:
        """Record a request refused before the pipeline (bad key, bad input): one ledger row,
        with whatever is known about who sent it and for which model."""
        model = ""
        if raw_body:
            try:
                parsed = orjson.loads(raw_body)
                if isinstance(parsed, dict) and isinstance(parsed.get("model"), str):
                    model = parsed["model"][:200]
            except orjson.JSONDecodeError:
                pass
        ctx = RequestContext(
            request_id=request_id,
            endpoint=endpoint,
            principal=principal or UNAUTHENTICATED,
            requested_model=model,
            body={},
            status=error.status,
            error=error,
        )
        ctx.ended = ctx.started
        self.chat_pipeline.record(ctx)

    def health_report(self) -> dict[str, Any]:
        """Each provider's status and each deployment's breaker, latency and error rate."""
        deployments = [h.to_json() for h in self.registry.health.values()]
        providers = []
        for name, pc in self.config.providers.items():
            mine = [d for d in deployments if d["deployment"].startswith(name + "/")]
            healthy = sum(d["status"] == "healthy" for d in mine)
            status = "healthy" if healthy == len(mine) else "degraded" if healthy else "down"
            providers.append(
                {
                    "provider": name,
                    "kind": pc.kind,
                    "status": status if mine else "unused",
                    "open": name in self.registry.providers,
                    "deployments": mine,
                }
            )
        overall = (
            "healthy"
            if all(p["status"] in ("healthy", "unused") for p in providers)
            else "degraded"
        )
        return {"status": overall, "providers": providers}

    async def route_preview(
        self,
        body: dict[str, Any],
        principal: Principal,
        tags: dict[str, str] | None = None,
        priority: str = "normal",
    ) -> dict[str, Any]:
        """The route decision for a request, without calling a model or moving thresholds."""
        policy = self.route_policies.get(body.get("model") or "auto")
        if policy is None:
            entry = self.registry.resolve(str(body.get("model")))
            return {"model": entry.name, "reason": "explicit model", "group": None}
        available = {n for n, e in self.registry.models.items() if e.mode == "chat"}
        decision = await policy.apreview(
            body, principal, tags=tags, priority=priority, available_models=available
        )
        return dict(decision.to_dict())

    def list_models(self) -> list[dict[str, Any]]:
        """``/v1/models`` entries: every configured model name and alias."""
        out: list[dict[str, Any]] = []
        for m in self.config.models:
            owner = m.deployments[0].provider
            for name in (m.name, *m.aliases):
                out.append({"id": name, "object": "model", "created": 0, "owned_by": owner})
        for group in self.route_policies:
            out.append({"id": group, "object": "model", "created": 0, "owned_by": "thrifty"})
        return out
