"""On-disk form of the semantic index: a JSON manifest plus one ``.npy`` of float32 vectors.

``path`` holds the manifest (format, version, model id, dimension, per scope its keys and
metadata in insertion order) and names the vector file beside it, ``<name>.<token>.npy``. A save
writes a new vector file, then atomically replaces the manifest (write to a temporary file, fsync,
rename, fsync the directory), then deletes older vector files: a reader sees the old pair or the
new pair, never a mix. One process saves a given path at a time (the embedded mode's owner).

Each scope may also carry ``exps``, its entries' expiry times (Unix seconds; ``null`` for an entry
that never expires). The field was added within version 1: a file written before it has none (the
index then gives its entries a default expiry at load), and a reader from before it ignores it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

__all__ = ["SavedScope", "read_index", "write_index"]

FORMAT = "thrifty-semantic-index"
VERSION = 1


@dataclass(frozen=True, slots=True)
class SavedScope:
    """One scope's entries, oldest first; ``vectors[i]`` and ``exps[i]`` belong to ``keys[i]``.

    ``exps`` is ``None`` for a file written before expiries were saved.
    """

    name: str
    keys: list[str]
    metas: list[dict[str, Any]]
    vectors: npt.NDArray[np.float32]
    exps: list[float | None] | None = None


def write_index(path: Path, *, dim: int, model_id: str, scopes: list[SavedScope]) -> None:
    """Write ``scopes`` to ``path`` (manifest) and a sibling vector file, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    blocks = [s.vectors.reshape(-1, dim) for s in scopes]
    vectors = np.concatenate(blocks) if blocks else np.empty((0, dim), np.float32)
    vec_name = f"{path.name}.{secrets.token_hex(6)}.npy"
    _atomic_write(path.parent / vec_name, lambda fh: np.save(fh, vectors.astype(np.float32)))
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "model_id": model_id,
        "dim": dim,
        "vectors": vec_name,
        "scopes": [_scope_item(s) for s in scopes],
    }
    _atomic_write(path, lambda fh: fh.write(orjson.dumps(manifest)))
    for stale in path.parent.glob(f"{path.name}.*.npy"):
        if stale.name != vec_name:
            stale.unlink(missing_ok=True)


def _scope_item(scope: SavedScope) -> dict[str, Any]:
    item: dict[str, Any] = {"scope": scope.name, "keys": scope.keys, "metas": scope.metas}
    if scope.exps is not None:
        item["exps"] = scope.exps
    return item


def saved_model_id(path: Path) -> str:
    """The embedder whose vectors the index saved at ``path`` holds."""
    manifest = orjson.loads(path.read_bytes())
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ValueError(f"{path} is not a thrifty semantic index (version {VERSION})")
    return str(manifest["model_id"])


def read_index(path: Path, *, dim: int, model_id: str | None) -> list[SavedScope]:
    """Read what :func:`write_index` wrote.

    Raises ``ValueError`` unless it is an index of ``model_id`` vectors of width ``dim``: vectors
    of another embedder cannot be compared with this one's and must be re-embedded
    (``model_id=None`` reads any embedder's index, for its keys and texts).
    """
    manifest = orjson.loads(path.read_bytes())
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ValueError(f"{path} is not a thrifty semantic index (version {VERSION})")
    if model_id is not None and (manifest["dim"] != dim or manifest["model_id"] != model_id):
        raise ValueError(
            f"{path} holds {manifest['model_id']} vectors of dim {manifest['dim']}, "
            f"not {model_id} of dim {dim}: re-embed instead of loading"
        )
    vectors = np.load(path.parent / manifest["vectors"], allow_pickle=False)
    out, offset = [], 0
    for item in manifest["scopes"]:
        n = len(item["keys"])
        block = np.array(vectors[offset : offset + n], dtype=np.float32).reshape(n, -1)
        exps = item.get("exps")
        if exps is not None and len(exps) != n:
            raise ValueError(f"{path}: {len(exps)} expiries for {n} keys in {item['scope']!r}")
        saved = SavedScope(item["scope"], list(item["keys"]), list(item["metas"]), block, exps)
        out.append(saved)
        offset += n
    if offset != len(vectors):
        raise ValueError(f"{path}: {len(vectors)} vectors for {offset} keys")
    return out


def _atomic_write(path: Path, write: Callable[[Any], object]) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with tmp.open("wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
