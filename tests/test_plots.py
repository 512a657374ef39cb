"""Plot functions on small synthetic tables: files written, axes labelled, the expected series drawn."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from irneurons.figures import tables as figure_data
from irneurons.figures import plots
from irneurons.study import selection as select
from irneurons.study import claims as study

from .test_select import long_table


def png_ok(path, min_px=300):
    assert path.is_file() and path.stat().st_size > 5000
    with Image.open(path) as im:
        assert min(im.size) >= min_px


@pytest.fixture
def neuron_tables():
    rng = np.random.default_rng(0)
    roles = {"a": "in_domain", "b": "ood"}
    tables = {}
    for d in roles:
        ffn = long_table(rng.normal(size=3 * 50), rng.random(3 * 50), "ffn", layers=3)
        head = long_table(rng.normal(size=3 * 4), rng.random(3 * 4), "head", layers=3)
        t = pd.concat([ffn, head])
        extra = t[t["class"] == "relevant"].assign(**{"class": "non_relevant"})
        tables[d] = pd.concat([t, extra, t[t["class"] == "relevant"].assign(part="query")], ignore_index=True)
    return tables, roles


def test_layer_and_part_distribution(tmp_path, neuron_tables):
    tables, roles = neuron_tables
    schemes = select.default_schemes(roles)
    assert schemes == ["a", "b", "fusion-in_domain", "fusion-ood", "fusion-all", "intersection-all", "ood"]
    layers = pd.concat([
        figure_data.layer_distribution_table(tables, roles, schemes, ["ffn", "head"], 0.1),
        figure_data.layer_distribution_table(tables, roles, ["fusion-all"], ["ffn"], 0.1, classes=["relevant"],
                                        parts=["query"]),
    ])
    row = layers.query("scheme == 'a' and unit_type == 'ffn' and `class` == 'relevant' and part == 'total'")
    assert row["n"].sum() == 15 and (row["layer_units"] == 50).all()
    fig = plots.layer_distribution(layers, tmp_path / "layers.png")
    png_ok(tmp_path / "layers.png")
    assert len(fig.axes) == 4  # (ffn, head) x (relevant, non_relevant)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "layer" and "%" in ax.get_ylabel() and len(ax.containers) == len(schemes)
    fig = plots.part_distribution(layers, tmp_path / "parts.png")
    png_ok(tmp_path / "parts.png")
    assert [l.get_label() for l in fig.axes[0].get_lines() if not l.get_label().startswith("_")] == ["total", "query"]


def test_overlap_heatmap(tmp_path, neuron_tables):
    tables, roles = neuron_tables
    schemes = select.default_schemes(roles)
    table = figure_data.overlap_table(tables, roles, schemes, "ffn", 0.1, {})
    assert len(table) == len(schemes) ** 2
    assert table.query("a == b and size_a > 0")["jaccard"].eq(1).all()
    assert table["chance"].iloc[0] == pytest.approx(select.chance_jaccard(150, 15))
    fig = plots.overlap_heatmap(table, tmp_path / "overlap.png")
    png_ok(tmp_path / "overlap.png")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == schemes
    assert "chance" in fig.axes[0].get_title()


def test_pruning_curves(tmp_path):
    from .test_study import record

    rng = np.random.default_rng(1)
    base = rng.uniform(0.3, 0.7, 30)
    unpruned = {"d": record("d", base)}
    pruned = []
    for f in (0.01, 0.05):
        pruned.append(record("d", base - 10 * f + rng.normal(0, 0.01, 30), "nig_top", fraction=f))
        pruned.append(record("d", [base - f + rng.normal(0, 0.01, 30) for i in range(3)], "random", fraction=f))
    table = study.comparisons(unpruned, pruned)
    fig = plots.pruning_curves(table, tmp_path / "pruning.png")
    png_ok(tmp_path / "pruning.png")
    ax = fig.axes[0]
    labels = [l.get_label() for l in ax.get_lines() if not l.get_label().startswith("_")]
    assert labels == ["nig_top", "random"]
    top = ax.get_lines()[0]
    np.testing.assert_allclose(top.get_xdata(), [1, 5])
    assert top.get_ydata()[1] == pytest.approx(-0.5, abs=0.01)
    assert len(ax.collections) == 1  # the random band
    assert "Δ" in ax.get_ylabel() and "%" in ax.get_xlabel()
    assert any(t.get_text() == "***" for t in ax.texts)


def test_completeness_and_token_view(tmp_path):
    rng = np.random.default_rng(2)
    n = 20
    delta = rng.normal(size=n)
    comp = pd.DataFrame({"ffn_cut_relerr_max": rng.uniform(1e-4, 1e-1, n), "f_x": delta, "f_baseline": 0.0,
                         "ffn_cut_sum_worst": delta * 1.01})
    fig = plots.completeness({"a": comp, "b": comp}, tmp_path / "comp.png")
    png_ok(tmp_path / "comp.png")
    assert len(fig.axes[1].collections) == 2 and fig.axes[0].get_xscale() == "log"
    tokens = pd.DataFrame({"pair_id": ["p1"] * 5 + ["p2"] * 3, "label": [1] * 5 + [0] * 3, "f_x": 1.0,
                           "position": list(range(5)) + list(range(3)),
                           "token": ["[CLS]", "heat", "[SEP]", "flow", "[SEP]", "[CLS]", "x", "[SEP]"],
                           "attribution": [0.0, 0.5, 0.0, -0.25, 0.0, 0.0, 0.1, 0.0]})
    plots.token_view(tokens, tmp_path / "tok.png", tmp_path / "tok.html")
    png_ok(tmp_path / "tok.png", min_px=100)
    html = (tmp_path / "tok.html").read_text()
    assert html.count("<span") == 8 and "rgba(214,38,40,1.00)" in html and "title='-0.2500'" in html


def test_pruning_strips_for_a_single_fraction(tmp_path):
    from .test_study import two_dataset_study

    unpruned, pruned = two_dataset_study()
    table = study.comparisons(unpruned, pruned)
    fig = plots.pruning_curves(table, tmp_path / "strips.png")  # one fraction: strips, not curves
    png_ok(tmp_path / "strips.png")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "own · nig_top" and "loo · nig_top" in labels and "own · random" in labels
    row = labels.index("own · random")
    dots = [c for c in ax.collections if len(c.get_offsets()) == 9]  # one dot per random set
    assert len(dots) == 1 and np.allclose(dots[0].get_offsets()[:, 1], row)
    assert any(t.get_text() == "***" for t in ax.texts)
