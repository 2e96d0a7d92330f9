"""The S3-compatible warm tier (AWS S3, MinIO, Ceph, R2…): shared by every replica, like Redis,
but for large or long-lived caches. Objects hold ``<meta JSON>\\n<entry bytes>``; expiry is
checked on read (an expired object is deleted then) — pair it with a bucket lifecycle rule to
reclaim space. Calls go through botocore in worker threads, each under the store's timeout;
a failure is a miss, never an error for the request."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from thrifty.config import S3CacheConfig

log = logging.getLogger("thrifty.cache")


class S3Store:
    name = "s3"

    def __init__(self, config: S3CacheConfig) -> None:
        import botocore.session  # the 'bedrock' / 's3' extra

        session = botocore.session.get_session()
        self._client = session.create_client(
            "s3",
            endpoint_url=config.endpoint_url,
            region_name=config.region,
            aws_access_key_id=config.access_key_id,
            aws_secret_access_key=config.secret_access_key,
        )
        self._bucket = config.bucket
        self._prefix = config.prefix
        self._timeout = config.timeout_s
        self.errors = 0

    async def _call(self, fn: Any, **kw: Any) -> Any:
        try:
            async with asyncio.timeout(self._timeout):
                return await asyncio.to_thread(fn, Bucket=self._bucket, **kw)
        except Exception as exc:
            if getattr(exc, "response", {}).get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            self.errors += 1
            log.warning("s3 cache tier unavailable: %s", exc.__class__.__name__)
            return None

    async def get(self, key: str) -> tuple[bytes, dict[str, Any]] | None:
        obj = await self._call(self._client.get_object, Key=self._prefix + key)
        if obj is None:
            return None
        raw = await asyncio.to_thread(obj["Body"].read)
        meta_raw, _, value = raw.partition(b"\n")
        meta = orjson.loads(meta_raw)
        if float(meta.get("expires_at", 0)) <= time.time():
            await self.delete(key)
            return None
        return value, meta

    async def set(self, key: str, value: bytes, ttl_s: float, meta: dict[str, Any]) -> None:
        body = orjson.dumps({**meta, "expires_at": time.time() + ttl_s}) + b"\n" + value
        await self._call(self._client.put_object, Key=self._prefix + key, Body=body)

    async def delete(self, key: str) -> bool:
        return (await self._call(self._client.delete_object, Key=self._prefix + key)) is not None

    async def _keys(self) -> list[str]:
        keys: list[str] = []
        token: str | None = None
        while True:
            kw: dict[str, Any] = {"Prefix": self._prefix}
            if token:
                kw["ContinuationToken"] = token
            page = await self._call(self._client.list_objects_v2, **kw)
            if not page:
                return keys
            keys += [o["Key"][len(self._prefix) :] for o in page.get("Contents", [])]
            token = page.get("NextContinuationToken")
            if not token:
                return keys

    async def scan(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        for key in await self._keys():
            found = await self.get(key)
            if found is not None:
                yield key, found[1]

    async def stats(self) -> dict[str, Any]:
        return {"entries": len(await self._keys()), "errors": self.errors}

    async def aclose(self) -> None:
        await asyncio.to_thread(self._client.close)
