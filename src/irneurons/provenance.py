"""Provenance: package versions, config hash, seeds; and logging set-up for workflow scripts."""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import sys
from importlib import metadata

PACKAGES = ("irneurons", "torch", "transformers", "captum", "ir_datasets", "bm25s", "pytrec-eval-terrier", "numpy", "pandas")


def versions() -> dict[str, str]:
    """Installed versions of the packages results depend on (``missing`` if not installed)."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


def config_hash(cfg) -> str:
    """sha256 (first 16 hex digits) of the config serialised as canonical JSON (sorted keys)."""
    blob = json.dumps(cfg, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def stamp(cfg, seed: int | None = None, **extra) -> dict:
    """The provenance record stored with every output: versions, config hash, seed and extras."""
    return {"versions": versions(), "config_hash": config_hash(cfg), "seed": seed, **extra}


def setup_logging(log_path: str | None) -> None:
    """Send stderr (tqdm bars, warnings, tracebacks) and the logging module to the rule's log file."""
    if log_path:
        sys.stderr = open(log_path, "w", buffering=1)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )


def code_version(*modules: str) -> str:
    """sha256 (16 hex digits) of the source of the given ``irneurons`` modules.

    Used as a rule param: Snakemake reruns a job when its params change, so editing a library module reruns
    exactly the rules that declare it (and what depends on their outputs), never the others.
    """
    from importlib.util import find_spec

    digest = hashlib.sha256()
    for name in sorted(modules):
        spec = find_spec(f"irneurons.{name}")
        if spec is None or spec.origin is None:
            raise ValueError(f"no module irneurons.{name}")
        with open(spec.origin, "rb") as fh:
            digest.update(name.encode() + b"\0" + fh.read())
    return digest.hexdigest()[:16]
