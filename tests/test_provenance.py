import ast
from pathlib import Path

import pytest

from irneurons.workflow import provenance


REPO = next(p for p in Path(__file__).resolve().parents if (p / "Snakefile").exists())


def _version_of_edited_copy(tmp_path, monkeypatch, module, edit, *names, scripts=()):
    """code_version(*names) (or script_code_version of each of ``scripts``) of a copy of the package where
    ``edit`` rewrote ``module``'s source (a dotted name below ``irneurons``)."""
    import shutil
    import sys

    import irneurons

    root = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
    pkg = root / "irneurons"
    shutil.copytree(next(iter(irneurons.__path__)), pkg)
    path = pkg / (module.replace(".", "/") + ".py")
    source = path.read_text()
    path.write_text(edit(source))
    assert path.read_text() != source
    for name in [m for m in sys.modules if m == "irneurons" or m.startswith("irneurons.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(root))
    if scripts:
        return tuple(provenance.script_code_version(REPO / "scripts" / s) for s in scripts)
    return provenance.code_version(*names)


def _code_edit(source):
    return source + "\nEDITED = 1\n"


def test_code_version_tracks_code_not_docstrings_or_comments(tmp_path, monkeypatch):
    a = provenance.code_version("retrieval.datasets", "retrieval.firststage")
    names = ("retrieval.evaluation", "attribution.conductance", "retrieval.datasets", "figures.plots")
    before = {m: provenance.code_version(m) for m in names}
    assert a == provenance.code_version("retrieval.firststage", "retrieval.datasets")  # order-free
    assert provenance.code_version("retrieval.datasets") != provenance.code_version("retrieval.evaluation")
    with pytest.raises(ValueError, match="no module irneurons.nope"):
        provenance.code_version("nope")
    with pytest.raises(ValueError, match="no module irneurons.data"):
        provenance.code_version("data")  # the flat names are gone
    # a comment and a docstring edit change nothing: no GPU job reruns for them
    doc = _version_of_edited_copy(tmp_path, monkeypatch, "retrieval.evaluation",
                                  lambda s: s.replace('"""', '"""Edited. ', 1) + "\n# edited\n", "retrieval.evaluation")
    assert doc == before["retrieval.evaluation"]
    # a code edit changes the module's version, and that of every module importing it (NIG runs on the engine)
    code = _version_of_edited_copy(tmp_path, monkeypatch, "retrieval.evaluation", _code_edit, "retrieval.evaluation")
    assert code != before["retrieval.evaluation"]
    engine = "attribution.engine"
    assert _version_of_edited_copy(tmp_path, monkeypatch, engine, _code_edit, "attribution.conductance") \
        != before["attribution.conductance"]
    assert _version_of_edited_copy(tmp_path, monkeypatch, engine, _code_edit, "figures.plots") == before["figures.plots"]


def test_rule_versions_follow_the_code_their_scripts_import(tmp_path, monkeypatch):
    """What the rules use (script_code_version): an evaluation edit leaves fine-tuning and attribution as they
    are but reruns the baseline table; an engine edit reruns attribution but no plot."""
    scripts = ("finetune.py", "attribute.py", "baseline_table.py", "plot_layers.py")
    before = tuple(provenance.script_code_version(REPO / "scripts" / s) for s in scripts)
    after = _version_of_edited_copy(tmp_path, monkeypatch, "retrieval.evaluation", _code_edit, scripts=scripts)
    assert after[:2] == before[:2] and after[2] != before[2] and after[3] == before[3]
    after = _version_of_edited_copy(tmp_path, monkeypatch, "attribution.engine", _code_edit, scripts=scripts)
    assert after[0] == before[0] and after[1] != before[1] and after[3] == before[3]


def test_subpackage_and_lazy_exports_are_traced():
    """A subpackage counts as all its modules; a name re-exported lazily counts the module it comes from."""
    assert provenance.code_version("figures") != provenance.code_version("figures.plots")
    tree = ast.parse("from irneurons import NeuronConductance\nfrom irneurons.rankers import parts as P\n")
    found = provenance._package_imports(tree, "", False)
    assert "rankers.parts" in found and "__init__" in found
    rel = ast.parse("from ..units.hooks import layout\nfrom . import engine\n")
    assert provenance._package_imports(rel, "attribution.conductance", False) == {"units.hooks", "attribution.engine"}


def test_code_only_drops_docstrings_and_comments():
    src = 'def f(x):\n    """Doc."""\n    # why\n    return x  # trailing\n\nclass C:\n    """Only a docstring."""\n'
    assert provenance._code_only(src) == "def f(x):\n    return x\n\nclass C:\n    pass"
    assert provenance._code_only("x = 1") != provenance._code_only("x = 2")


def test_config_hash_is_canonical():
    assert provenance.config_hash({"a": 1, "b": [2]}) == provenance.config_hash({"b": [2], "a": 1})
    assert provenance.config_hash({"a": 1}) != provenance.config_hash({"a": 2})
