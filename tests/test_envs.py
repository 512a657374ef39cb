"""Conda env files: they parse, and pin exactly the versions pyproject.toml pins."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ENVS = sorted((REPO / "envs").glob("*.yaml"))


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(requirements) -> dict[str, str]:
    out = {}
    for req in requirements:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s;]+)\s*", req)
        if m:
            out[norm(m.group(1))] = m.group(2)
    return out


PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
PROJECT_PINS = pins(PYPROJECT["dependencies"] + sum(PYPROJECT["optional-dependencies"].values(), []))


def test_there_is_an_env_per_rule_family():
    assert {p.stem for p in ENVS} >= {"data", "torch", "plots"}


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_env_parses_and_matches_pyproject(path):
    env = yaml.safe_load(path.read_text())
    assert env["channels"] and "nodefaults" in env["channels"]
    deps = env["dependencies"]
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    env_pins = pins(pip)
    assert env_pins, f"{path.name}: no pinned pip requirements"
    assert env_pins["torch"] == "2.13.0"  # the CPU wheel pin every setup path uses
    mismatched = {k: (v, PROJECT_PINS.get(k)) for k, v in env_pins.items() if PROJECT_PINS.get(k) != v}
    assert not mismatched, f"{path.name}: pins differ from pyproject (env, pyproject): {mismatched}"
    assert "-e .." in pip  # the irneurons package itself


def test_every_rule_names_an_existing_env():
    used = set()
    for smk in (REPO / "rules").glob("*.smk"):
        for rel in re.findall(r'^\s*"(\.\./envs/[^"]+)"', smk.read_text(), flags=re.M):
            assert (smk.parent / rel).resolve().is_file(), f"{smk.name}: {rel} missing"
            used.add(Path(rel).name)
    assert used == {p.name for p in ENVS}
