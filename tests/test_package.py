"""The shape of the package: imports run one way, subpackages in layers, lazy front doors, narrow signatures."""

import ast
import pkgutil
import re
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pytest

import irneurons
from irneurons.workflow import provenance

SRC = Path(irneurons.__file__).parent
REPO = next(p for p in Path(__file__).resolve().parents if (p / "Snakefile").exists())

# Each layer imports only from itself and the layers before it.
LAYERS = [
    ("_lazy", "errors", "numerics"),
    ("units",),
    ("rankers",),
    ("attribution",),
    ("retrieval",),
    ("study",),
    ("figures",),
    ("workflow",),
    ("testing", "cli", "__init__"),
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}
RANKER_KINDS = {"cross_encoder", "t5", "causal_lm", "bi_encoder"}


def modules() -> dict[str, tuple[Path, bool]]:
    """Dotted name below ``irneurons`` -> (source file, is a package)."""
    out = {"__init__": (SRC / "__init__.py", True)}
    for info in pkgutil.walk_packages(irneurons.__path__, "irneurons."):
        name = info.name.removeprefix("irneurons.")
        spec = info.module_finder.find_spec(info.name.rsplit(".", 1)[-1])
        out[name] = (Path(spec.origin), info.ispkg)
    return out


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for name, (path, is_package) in modules().items():
        graph[name] = provenance._package_imports(ast.parse(path.read_text()), "" if name == "__init__" else name,
                                                  is_package)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path [a, b, ..., a], or None (depth-first search with colours)."""
    colour, stack = {}, []

    def visit(node):
        colour[node] = "grey"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if colour.get(nxt) == "grey":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in colour and (found := visit(nxt)):
                return found
        stack.pop()
        colour[node] = "black"
        return None

    for node in sorted(graph):
        if node not in colour and (found := visit(node)):
            return found
    return None


def layer_of(module: str) -> int:
    return LAYER[module.split(".")[0]]


def test_find_cycle_finds_a_planted_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_has_no_import_cycle():
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()))


def test_imports_run_down_the_layers_and_never_through_a_subpackage_front_door():
    mods = modules()
    wrong, via_init = [], []
    for name, imported in import_graph().items():
        if name == "__init__":
            continue
        for target in imported:
            if target == "__init__" or (target in mods and mods[target][1] and target != name.split(".")[0]):
                via_init.append(f"{name} imports {target}")
            elif layer_of(target) > layer_of(name):
                wrong.append(f"{name} (layer {layer_of(name)}) imports {target} (layer {layer_of(target)})")
    assert not wrong, wrong
    assert not via_init, via_init


def test_every_module_belongs_to_a_layer():
    assert {m.split(".")[0] for m in modules()} <= set(LAYER)


@pytest.mark.parametrize("package", ["__init__", "units", "rankers", "attribution", "retrieval", "study", "figures",
                                     "workflow"])
def test_front_doors_have_a_docstring_and_exports_that_resolve_in_dependency_order(package):
    mod = import_module("irneurons" if package == "__init__" else f"irneurons.{package}")
    assert mod.__doc__ and len(mod.__doc__) > 80
    exports = mod._EXPORTS
    assert mod.__all__ == list(exports) and set(dir(mod)) >= set(exports)
    for name, where in exports.items():
        assert getattr(mod, name) is getattr(import_module(f"irneurons.{where}"), name), name
    # dependency order: no exported module imports (transitively) a module listed after it
    graph, order = import_graph(), list(dict.fromkeys(exports.values()))

    def reach(m, seen):
        for n in graph.get(m, ()):
            if n not in seen:
                seen.add(n)
                reach(n, seen)
        return seen

    for i, m in enumerate(order):
        assert not reach(m, set()) & set(order[i + 1:]), f"{m} imports a module exported after it"
    with pytest.raises(AttributeError):
        mod.no_such_name  # noqa: B018


def test_what_the_snakefile_imports_at_parse_time_is_torch_free():
    """rules/*.smk import these modules when Snakemake parses the workflow (every job parses it again)."""
    smk = "\n".join(p.read_text() for p in (REPO / "rules").glob("*.smk"))
    names = sorted(set(re.findall(r"^\s*from (irneurons[\w.]*) import", smk, re.M)))
    assert "irneurons.workflow.provenance" in names
    # the rules' code versions are computed at parse time too: they read sources, never import them
    versions = ("from irneurons.workflow.provenance import script_code_version\n"
                f"for s in {sorted(str(p) for p in (REPO / 'scripts').glob('*.py'))!r}: script_code_version(s)\n")
    code = "import sys\n" + "".join(f"import {n}\n" for n in names) + versions + "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False", names


def _functions():
    for name, (path, _) in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield name, node


def test_no_function_takes_more_than_eight_parameters():
    wide = []
    for name, fn in _functions():
        a = fn.args
        params = [*a.posonlyargs, *a.args, *a.kwonlyargs]
        count = len(params) + bool(a.vararg) + bool(a.kwarg) - (bool(params) and params[0].arg in ("self", "cls"))
        if count > 8:
            wide.append(f"{name}.{fn.name}: {count}")
    assert not wide, wide


def test_ranker_kinds_are_dispatched_by_the_table_only():
    """No ``kind == "bi_encoder"``-style branch outside irneurons.rankers.kinds (the KINDS table)."""
    branches = []
    for name, (path, _) in modules().items():
        if name == "rankers.kinds":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                consts = [c for c in (node.left, *node.comparators) if isinstance(c, (ast.Constant, ast.Tuple))]
                values = {e.value for c in consts for e in (c.elts if isinstance(c, ast.Tuple) else [c])
                          if isinstance(e, ast.Constant)}
                if values & RANKER_KINDS:
                    branches.append(f"{name}:{node.lineno}")
    assert not branches, branches


def test_every_deliberate_error_derives_from_irneurons_error():
    from irneurons import errors

    classes = [getattr(errors, n) for n in dir(errors) if isinstance(getattr(errors, n), type)]
    assert len(classes) >= 9 and all(issubclass(c, errors.IrneuronsError) for c in classes)
    for name, (path, _) in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error") and name != "errors":
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                assert bases & ({"IrneuronsError"} | {c.__name__ for c in classes}), f"{name}.{node.name}"
