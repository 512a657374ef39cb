"""Provenance: package versions, config hash, seeds; and logging set-up for workflow scripts."""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import logging
import os
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


def _code_only(source: str) -> str:
    """``source`` without comments and docstrings: the ``ast.unparse`` of its syntax tree, docstrings dropped."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.unparse(tree)


@functools.lru_cache(maxsize=None)
def _module_code(origin: str, mtime_ns: int, size: int) -> tuple[str, frozenset]:
    """(code without comments / docstrings, package modules imported) of one source file, parsed once per
    process and version of the file: every rule of a Snakefile parse asks for overlapping module closures."""
    with open(origin, encoding="utf-8") as fh:
        source = fh.read()
    return _code_only(source), frozenset(_package_imports(ast.parse(source)))


def _package_imports(tree: ast.AST) -> set[str]:
    """Names of the ``irneurons`` modules a module imports (relative or absolute, at any depth of the code)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level == 1 or base.startswith("irneurons"):
                base = base.removeprefix("irneurons").lstrip(".") if node.level == 0 else base
                if base:
                    found.add(base.split(".")[0])
                else:  # from . import a, b
                    found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("irneurons."))
    return found


def code_version(*modules: str) -> str:
    """sha256 (16 hex digits) of the code of the given ``irneurons`` modules and of every package module they
    import, transitively (so ``code_version("nig")`` covers the engine, quadrature, units ... it runs on).

    Comments and docstrings do not count (:func:`_code_only`): editing them changes no version. Used as a rule
    param: Snakemake reruns a job when its params change, so a code edit reruns exactly the rules whose modules
    it reaches (and what depends on their outputs), never the others.
    """
    from importlib.util import find_spec

    digest = hashlib.sha256()
    todo, code = list(modules), {}
    while todo:
        name = todo.pop()
        if name in code:
            continue
        spec = find_spec(f"irneurons.{name}")
        if spec is None or spec.origin is None:
            if name in modules:
                raise ValueError(f"no module irneurons.{name}")
            continue  # ``from . import x`` of a name that is not a module
        stat = os.stat(spec.origin)
        code[name], imports = _module_code(spec.origin, stat.st_mtime_ns, stat.st_size)
        todo.extend(imports - code.keys())
    for name in sorted(code):
        digest.update(name.encode() + b"\0" + code[name].encode())
    return digest.hexdigest()[:16]
