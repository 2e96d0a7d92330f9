"""The upstream HTTP/1.1 client: one keep-alive connection pool per upstream origin.

Built on asyncio protocols and ``httptools`` (llhttp, the parser uvicorn uses) instead of
aiohttp's client, whose request/response machinery cost ~110 µs of event-loop CPU per call on
the development machine against ~20 µs for this one (``bench/choices.py --only client``;
docs/decisions.md). Modules: ``pool`` (connections per origin), ``connection`` (the protocol
and ``Response``), ``errors``. What the gateway needs of a client, and nothing else:

- ``POST`` / ``GET`` with a byte body, ``content-length`` framing, keep-alive connections reused
  LIFO, at most ``limit`` connections per origin (callers beyond it wait), idle connections closed
  after ``keepalive_s``; TLS with the default trust store for ``https`` origins.
- Responses framed by ``content-length``, chunked transfer coding or the end of the connection;
  ``gzip`` / ``deflate`` bodies are decoded (``accept-encoding`` is never sent, so servers answer
  with the identity coding anyway).
- The body is read whole (``read``), by chunk (``readany``) or by line (``readline``); a reader
  that falls more than 1 MiB behind pauses the socket until it catches up.
- Failures raise ``OSError`` subclasses: ``UpstreamClosed`` (the server closed the connection
  before the response was complete), ``BadResponse`` (not HTTP/1.x); connect errors are the OS's.
  Timeouts are timers armed only while a call actually waits: ``Pool.request(timeout=)``
  bounds getting a connection, connecting and the first byte; ``read`` / ``readany`` /
  ``readline`` take their own. A connection that timed out is dropped, never reused.

No proxies, cookies, redirects or HTTP/2: upstream APIs need none of them.
"""

from thrifty.providers.transport.connection import Response
from thrifty.providers.transport.errors import BadResponse, UpstreamClosed, encode_headers
from thrifty.providers.transport.pool import Pool, split_url

__all__ = ["BadResponse", "Pool", "Response", "UpstreamClosed", "encode_headers", "split_url"]
