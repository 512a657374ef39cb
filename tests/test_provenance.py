import pytest

from irneurons import provenance


def _version_of_edited_copy(tmp_path, monkeypatch, module, edit, *names):
    """code_version(*names) of a copy of the package where ``edit`` rewrote ``module``'s source."""
    import shutil
    import sys

    import irneurons

    root = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
    pkg = root / "irneurons"
    shutil.copytree(next(iter(irneurons.__path__)), pkg)
    path = pkg / f"{module}.py"
    source = path.read_text()
    path.write_text(edit(source))
    assert path.read_text() != source
    for name in [m for m in sys.modules if m == "irneurons" or m.startswith("irneurons.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(root))
    return provenance.code_version(*names)


def test_code_version_tracks_code_not_docstrings_or_comments(tmp_path, monkeypatch):
    a = provenance.code_version("data", "firststage")
    before = {m: provenance.code_version(m) for m in ("evaluate", "nig", "data", "plots")}
    assert a == provenance.code_version("firststage", "data")  # order-free
    assert provenance.code_version("data") != provenance.code_version("evaluate")
    with pytest.raises(ValueError, match="no module irneurons.nope"):
        provenance.code_version("nope")
    # a comment and a docstring edit change nothing: no GPU job reruns for them
    doc = _version_of_edited_copy(tmp_path, monkeypatch, "evaluate",
                                  lambda s: s.replace('"""', '"""Edited. ', 1) + "\n# edited\n", "evaluate")
    assert doc == before["evaluate"]
    # a code edit changes the module's version, and that of every module importing it (nig runs on the engine)
    code = _version_of_edited_copy(tmp_path, monkeypatch, "evaluate", lambda s: s + "\nEDITED = 1\n", "evaluate")
    assert code != before["evaluate"]
    assert _version_of_edited_copy(tmp_path, monkeypatch, "engine", lambda s: s + "\nEDITED = 1\n", "nig") != before["nig"]
    assert _version_of_edited_copy(tmp_path, monkeypatch, "engine", lambda s: s + "\nEDITED = 1\n", "plots") == before["plots"]


def test_code_only_drops_docstrings_and_comments():
    src = 'def f(x):\n    """Doc."""\n    # why\n    return x  # trailing\n\nclass C:\n    """Only a docstring."""\n'
    assert provenance._code_only(src) == "def f(x):\n    return x\n\nclass C:\n    pass"
    assert provenance._code_only("x = 1") != provenance._code_only("x = 2")


def test_config_hash_is_canonical():
    assert provenance.config_hash({"a": 1, "b": [2]}) == provenance.config_hash({"b": [2], "a": 1})
    assert provenance.config_hash({"a": 1}) != provenance.config_hash({"a": 2})
