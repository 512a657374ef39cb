"""The report's captions (rules' report(caption=...) and the Snakefile's report:) are clean reStructuredText:
``snakemake --report`` would print docutils' warnings for them otherwise."""

import io
import re
from pathlib import Path

import docutils.core
import jinja2
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def captions() -> list[Path]:
    """Every caption file the workflow names, resolved as Snakemake does (relative to the naming file)."""
    out = set()
    for smk in [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]:
        text = smk.read_text()
        for name in re.findall(r'caption="([^"]+)"', text) + re.findall(r'^report:\s*"([^"]+)"', text, re.M):
            out.add((smk.parent / name).resolve())
    return sorted(out)


def test_every_caption_is_named_and_exists():
    named = captions()
    assert len(named) >= 10 and all(p.is_file() for p in named), [p for p in named if not p.is_file()]
    assert {p.name for p in named} == {p.name for p in (REPO / "report").glob("*.rst")}  # none orphaned


@pytest.mark.parametrize("path", captions(), ids=lambda p: p.name)
def test_caption_renders_without_docutils_warnings(path):
    config = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())
    text = jinja2.Template(path.read_text()).render(snakemake={"config": config})
    warnings = io.StringIO()
    docutils.core.publish_string(text, writer="null",
                                 settings_overrides={"report_level": 1, "warning_stream": warnings})
    assert warnings.getvalue() == ""
    assert max(map(len, path.read_text().splitlines())) <= 120
