"""PEP 562 lazy re-exports: a package names what it offers without importing it (and torch) up front.

Each ``__init__`` declares ``_EXPORTS = {name: "subpackage.module", ...}`` (module paths below ``irneurons``, in
dependency order) and gets ``__getattr__`` / ``__dir__`` from :func:`lazy_exports`. :func:`irneurons.workflow.
provenance.code_version` reads the same literal, so a name imported from a package is traced to its module.
"""

from __future__ import annotations

from importlib import import_module


def lazy_exports(package: str, exports: dict[str, str]):
    """``(__getattr__, __dir__)`` for ``package`` that import ``irneurons.<exports[name]>`` on first access."""

    def __getattr__(name):
        if name in exports:
            return getattr(import_module(f"irneurons.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(exports)

    return __getattr__, __dir__
