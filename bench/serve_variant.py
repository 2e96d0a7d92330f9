"""Run the gateway exactly like ``thrifty serve`` (uvicorn, uvloop, httptools, 1 worker, no
access log) with an experimental process-level tweak, to measure a what-if without editing src/.

    THRIFTY_CONFIG=cfg.yaml python bench/serve_variant.py --port 4000 --gc-freeze

``--gc-freeze``: once the lifespan start-up is complete, ``gc.collect()`` then ``gc.freeze()``,
so the ~100k objects of the imports and the start-up leave the generations the collector
scans (a full collection then no longer walks them).
``--gc-threshold N``: ``gc.set_threshold(N, 10, 10)`` (the first generation's threshold).
"""

from __future__ import annotations

import argparse
import gc
import os
from typing import Any

import uvicorn


class FreezeAfterStartup:
    """ASGI wrapper: freeze the heap when the wrapped app reports its start-up complete."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.startup.complete":
                gc.collect()
                gc.freeze()
            await send(message)

        await self.app(scope, receive, send_wrapper)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=4000)
    ap.add_argument("--gc-freeze", action="store_true")
    ap.add_argument("--gc-threshold", type=int, default=0)
    a = ap.parse_args()
    if not os.environ.get("THRIFTY_CONFIG"):
        raise SystemExit("set THRIFTY_CONFIG")
    if a.gc_threshold:
        gc.set_threshold(a.gc_threshold, 10, 10)

    def factory() -> Any:
        from thrifty.server.app import app_from_env

        app = app_from_env()
        return FreezeAfterStartup(app) if a.gc_freeze else app

    uvicorn.run(
        factory,
        factory=True,
        host=a.host,
        port=a.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
