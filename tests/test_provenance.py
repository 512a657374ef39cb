import pytest

from irneurons import provenance


def test_code_version_tracks_module_sources(tmp_path, monkeypatch):
    a = provenance.code_version("data", "firststage")
    before, data_before = provenance.code_version("evaluate"), provenance.code_version("data")
    assert a == provenance.code_version("firststage", "data")  # order-free
    assert a != provenance.code_version("data") != provenance.code_version("evaluate")
    with pytest.raises(ValueError, match="no module irneurons.nope"):
        provenance.code_version("nope")
    # editing a module's source changes its version (a copy of the package stands in for an edit)
    import shutil
    import sys

    import irneurons

    pkg = tmp_path / "irneurons"
    shutil.copytree(next(iter(irneurons.__path__)), pkg)
    (pkg / "evaluate.py").write_text((pkg / "evaluate.py").read_text() + "\n# edited\n")
    for name in [m for m in sys.modules if m == "irneurons" or m.startswith("irneurons.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    edited = provenance.code_version("evaluate")  # now resolves irneurons from the edited copy
    assert (pkg / "evaluate.py").is_file() and edited != before
    assert provenance.code_version("data") == data_before  # untouched modules keep their version


def test_config_hash_is_canonical():
    assert provenance.config_hash({"a": 1, "b": [2]}) == provenance.config_hash({"b": [2], "a": 1})
    assert provenance.config_hash({"a": 1}) != provenance.config_hash({"a": 2})
