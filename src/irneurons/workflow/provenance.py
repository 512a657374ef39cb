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
from pathlib import Path
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
    """Send stderr (tqdm bars, warnings, tracebacks) and the logging module to the rule's log file; an
    :class:`irneurons.errors.IrneuronsError` that ends the job also goes, as one line, to the job's own stderr
    (snakemake's error output)."""
    if log_path:
        sys.stderr = open(log_path, "w", buffering=1)
        sys.excepthook = _report_to_job_stderr
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )


def _report_to_job_stderr(kind, err, tb) -> None:
    """Excepthook of a job script: the traceback to the log; an irneurons error's one line also to the job's stderr."""
    from irneurons.errors import IrneuronsError

    sys.__excepthook__(kind, err, tb)
    if isinstance(err, IrneuronsError) and sys.__stderr__ is not None:
        print(f"irneurons: error: {str(err).strip().splitlines()[0] if str(err).strip() else kind.__name__}",
              file=sys.__stderr__)


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
def _module_code(origin: str, mtime_ns: int, size: int, name: str, is_package: bool) -> tuple[str, frozenset]:
    """(code without comments / docstrings, package modules imported) of one source file, parsed once per
    process and version of the file: every rule of a Snakefile parse asks for overlapping module closures.
    A package ``__init__`` also counts the modules of its lazy re-exports (:func:`_lazy_exports`)."""
    with open(origin, encoding="utf-8") as fh:
        source = fh.read()
    tree = ast.parse(source)
    imports = _package_imports(tree, name, is_package)
    if is_package:
        imports |= set(_lazy_exports(tree).values())
    return _code_only(source), frozenset(imports)


def _lazy_exports(tree: ast.AST) -> dict[str, str]:
    """A package ``__init__``'s ``_EXPORTS = {name: "sub.module", ...}`` literal (PEP 562 lazy re-exports)."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets):
            return ast.literal_eval(node.value)
    return {}


def _package_root() -> Path:
    """The folder of the ``irneurons`` package that ``import irneurons`` finds (no submodule is imported)."""
    from importlib.util import find_spec

    return Path(find_spec("irneurons").submodule_search_locations[0])


def _source(name: str) -> tuple[Path, bool] | None:
    """(source file, is a package) of module ``name`` below ``irneurons`` (``"__init__"``: the package itself),
    found on disk: resolving it with importlib would import its parent packages, and torch with them, at every
    Snakefile parse."""
    root = _package_root()
    if name in ("", "__init__"):
        return root / "__init__.py", True
    path = root.joinpath(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py", True
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py"), False
    return None


def _is_module(name: str) -> bool:
    return _source(name) is not None


def _package_imports(tree: ast.AST, name: str, is_package: bool) -> set[str]:
    """Dotted names (below ``irneurons``) of the package modules that module ``name`` imports, relative or
    absolute, at any depth of the code. ``from irneurons.a import b`` counts ``a.b`` when that is a module,
    else ``a``; a name a package re-exports lazily (its ``_EXPORTS``) counts the module it comes from."""
    here = name.split(".") if name else []
    package = here if is_package else here[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] + (node.module.split(".") if node.module else [])
            elif node.module == "irneurons" or (node.module or "").startswith("irneurons."):
                base = node.module.split(".")[1:]
            else:
                continue
            base = ".".join(base)
            for alias in node.names:
                sub = f"{base}.{alias.name}" if base else alias.name
                found.add(sub if _is_module(sub) else (base or "__init__"))
        elif isinstance(node, ast.Import):
            found.update(".".join(a.name.split(".")[1:]) for a in node.names if a.name.startswith("irneurons."))
    return found


def code_version(*modules: str) -> str:
    """sha256 (16 hex digits) of the code of the given ``irneurons`` modules (dotted names below the package,
    e.g. ``"attribution.engine"``; a subpackage counts as all its modules) and of every package module they
    import, transitively (so ``code_version("attribution.conductance")`` covers the engine, quadrature, units ...
    it runs on).

    Comments and docstrings do not count (:func:`_code_only`): editing them changes no version. Used as a rule
    param: Snakemake reruns a job when its params change, so a code edit reruns exactly the rules whose modules
    it reaches (and what depends on their outputs), never the others.
    """
    digest = hashlib.sha256()
    todo, code = [], {}
    for name in modules:
        found = _source(name) if name != "__init__" else _source("")
        if found is None:
            raise ValueError(f"no module irneurons.{name}")
        todo.append(name)
        if found[1] and name != "__init__":  # a subpackage: all of its modules
            folder = found[0].parent
            todo += [".".join((name, *p.relative_to(folder).with_suffix("").parts)).removesuffix(".__init__")
                     for p in folder.rglob("*.py")]
    while todo:
        name = todo.pop()
        if name in code:
            continue
        found = _source(name)
        if found is None:
            continue
        origin, is_package = found
        stat = os.stat(origin)
        code[name], imports = _module_code(str(origin), stat.st_mtime_ns, stat.st_size,
                                           "" if name == "__init__" else name, is_package)
        todo.extend(imports - code.keys())
    for name in sorted(code):
        digest.update(name.encode() + b"\0" + code[name].encode())
    return digest.hexdigest()[:16]


def script_code_version(path) -> str:
    """:func:`code_version` of the package modules a workflow script imports (its ``irneurons`` imports, read
    from its source): a rule's ``params: code=`` then follows exactly the code its script runs."""
    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    modules = {m for m in _package_imports(tree, "", False) if m != "__init__"}
    return code_version(*sorted(modules)) if modules else code_version("__init__")
