"""Shard I/O: one attribution job's arrays and metadata in one ``.npz``, written atomically."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile

import numpy as np


def save_shard(path: str | os.PathLike, result: dict[str, np.ndarray], metadata: dict) -> None:
    """Write ``result`` + ``metadata`` (as a JSON string field) to ``path`` (.npz) atomically.

    Writes a temp file in the same directory and ``os.replace``s it, so readers never see a
    partial shard; on any error the temp file is removed.
    """
    path = os.fspath(path)
    if "metadata" in result:
        raise ValueError("'metadata' is reserved in a shard")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    meta = json.dumps(metadata, sort_keys=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, metadata=np.array(meta), **result)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def load_shard(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """Read a shard written by :func:`save_shard`: (arrays, metadata)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != "metadata"}
        metadata = json.loads(str(z["metadata"])) if "metadata" in z.files else {}
    return arrays, metadata
