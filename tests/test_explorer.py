"""The neuron explorer: its data builder on a tiny hand-made study folder, and the page in a real headless
Chromium (found on PATH; installed with apt-get only when IRNEURONS_BROWSER_INSTALL=1, else skipped)."""

import io
import json
import math

import pandas as pd
import pytest

from irneurons.figures import explorer

from .browser import Browser, ensure_chromium

DATASETS = ("alpha", "beta")
PARTS = ("cls", "query", "sep1", "passage", "sep2", "pad", "total")
SIGN = {"relevant": 1.0, "non_relevant": -1.0, "all": 0.0}
FFN = [(layer, unit) for layer in range(3) for unit in range(4)]
HEADS = [(layer, head) for layer in range(2) for head in range(2)]
SELECTED = ["ffn:0:1", "ffn:1:2", "ffn:2:2", "ffn:2:3", "head:0:1", "head:1:0"]
RANDOM_ONLY = ["ffn:0:2", "ffn:1:0", "ffn:2:0", "ffn:2:1"]
UNPRUNED = {"alpha": 0.5, "beta": 0.4}
TOKENS = ["[CLS]", "wing", "flutter", "[SEP]", "the", "swept", "wing", "</script><b>", "flutter", "test", "[SEP]"]
TOKEN_PARTS = ["cls", "query", "query", "sep1"] + ["passage"] * 6 + ["sep2"]


def neuron_table(dataset: str) -> pd.DataFrame:
    """mean = 0.01 (10 layer + unit) x class sign x (2 on beta) x (1 for total, 0.5 per part); std 0.4;
    n 16 per class (32 for all); mean |act| 1 + layer + unit / 10."""
    rows = []
    for unit_type, units in (("ffn", FFN), ("head", HEADS)):
        for layer, unit in units:
            for cls, sign in SIGN.items():
                for part in PARTS:
                    mean = 0.01 * (10 * layer + unit) * sign * (2 if dataset == "beta" else 1) * (1 if part == "total" else 0.5)
                    rows.append(dict(unit_type=unit_type, layer=layer, unit=unit, part=part, **{"class": cls},
                                     mean=mean, std=0.4, n=32 if cls == "all" else 16,
                                     absact_mean=1 + layer + unit / 10))
    return pd.DataFrame(rows).astype({"layer": "int16", "unit": "int32"})


def selection(unit_type, scheme, strategy, fraction, sets, members):
    return dict(scheme=scheme, kind="single", members=members, strategy=strategy, unit_type=unit_type,
                fraction=fraction, k=len(sets[0]), count=len(sets[0]), n_sets=len(sets),
                score={"class": "relevant", "part": "total"}, sets=sets)


SETS = [
    selection("ffn", "alpha", "nig_top", 0.25, [[[0, 1], [1, 2], [2, 3]]], ["alpha"]),
    selection("ffn", "alpha", "random", 0.25, [[[0, 1], [0, 2], [1, 0]], [[2, 0], [2, 1], [1, 2]]], ["alpha"]),
    selection("ffn", "loo-beta", "contrast_top", 0.25, [[[1, 2], [2, 2]]], ["alpha"]),
    selection("head", "alpha", "nig_top", 0.5, [[[1, 0], [0, 1]]], ["alpha"]),
]
# (dataset, target, scheme, strategy, fraction, ndcg@10 of each set)
PRUNED = [
    ("alpha", "ffn", "alpha", "nig_top", 0.25, [0.3]),
    ("alpha", "ffn-passage", "alpha", "nig_top", 0.25, [0.45]),
    ("alpha", "ffn", "alpha", "random", 0.25, [0.48, 0.46]),
    ("beta", "ffn", "loo-beta", "contrast_top", 0.25, [0.35]),
    ("alpha", "head", "alpha", "nig_top", 0.5, [0.42]),
]
# per-token conductance of ffn:1:2 over the two pairs: its largest magnitude is -0.9 at "swept" (pair 1, pos 5)
NEURON_TOKENS = {
    "pairs": [
        {"pair_id": "q1:d1", "dataset": "alpha", "class": "relevant", "tokens": TOKENS, "parts": TOKEN_PARTS},
        {"pair_id": "q1:d2", "dataset": "alpha", "class": "non_relevant", "tokens": TOKENS, "parts": TOKEN_PARTS},
    ],
    "units": {
        # [pair index, position, value]; the reader sorts by |value| again and keeps TOP_TOKENS
        "ffn:1:2": [[0, 1, 0.1], [0, 2, 0.5], [0, 5, 0.2], [0, 6, 0.3], [0, 8, 0.05],
                    [1, 1, -0.2], [1, 2, 0.1], [1, 5, -0.9], [1, 9, 0.4]],
        "ffn:0:1": [[1, 10, 0.01]],
        "ffn:3:9": [[0, i, 1.0] for i in range(11)],  # not a selected unit: ignored
    },
    "provenance": {"seed": 0},
}


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def metrics(ndcg):
    return {"mean": {"ndcg@10": ndcg, "mrr@10": ndcg}, "per_query": {}}


@pytest.fixture
def study(tmp_path):
    """A finished study folder results/tiny/: 2 datasets, 4 selection files (5 sets), pruning results, one
    dataset's token attributions and explorer/neuron_tokens.json."""
    root = tmp_path / "results" / "tiny"
    for d in DATASETS:
        (root / "neurons").mkdir(parents=True, exist_ok=True)
        neuron_table(d).to_parquet(root / "neurons" / f"{d}.parquet")
        write_json(root / "pruning" / d / "unpruned.json",
                   dict(dataset=d, target=None, scheme=None, strategy="unpruned", fraction=0.0, sets=[metrics(UNPRUNED[d])]))
    for sel in SETS:
        write_json(root / "sets" / sel["unit_type"] / sel["scheme"] / sel["strategy"] / f"{sel['fraction']}.json", sel)
    for d, target, scheme, strategy, fraction, values in PRUNED:
        write_json(root / "pruning" / d / target / scheme / strategy / f"{fraction}.json",
                   dict(dataset=d, target=target, scheme=scheme, strategy=strategy, fraction=fraction,
                        n_sets=len(values), sets=[metrics(v) for v in values]))
    rows = [dict(pair_id=pid, label=label, f_x=1.5 * label - 0.5, f_baseline=0.1, delta=1.5 * label - 0.6,
                 position=i, token=tok, part=part, attribution=(0.3 if i % 2 else -0.2) * (i + 1) if part != "cls" else 0.0)
            for pid, label in (("q1:d1", 1), ("q1:d2", 0)) for i, (tok, part) in enumerate(zip(TOKENS, TOKEN_PARTS))]
    (root / "tokens").mkdir()
    pd.DataFrame(rows).to_parquet(root / "tokens" / "alpha.parquet")
    write_json(root / "explorer" / "neuron_tokens.json", NEURON_TOKENS)
    return root


def unit(data, uid):
    return next(u for u in data["units"] if u["id"] == uid)


def cell(data, u, dataset, cls, part):
    row = u["stats"][data["datasets"].index(dataset)][data["classes"].index(cls)][data["parts"].index(part)]
    return dict(zip(data["stat_fields"], row))


def sets_of(data, u):
    return sorted(data["sets"][i]["id"] for i in u["sets"])


def test_constants_follow_the_pipeline():
    from irneurons.study import aggregate
    from irneurons.study import selection as select

    assert set(explorer.CLASSES) == set(aggregate.CLASSES) and set(explorer.PARTS) == set(aggregate.PARTS)
    assert explorer.RANDOM_STRATEGIES == select.MULTI_STRATEGIES


def test_table_lists_the_members_of_the_non_random_sets_only(study):
    data = explorer.build(**explorer.collect(study))
    assert data["name"] == "tiny" and data["datasets"] == ["alpha", "beta"]
    assert [u["id"] for u in data["units"]] == SELECTED  # random-only units are left out
    assert not set(RANDOM_ONLY) & {u["id"] for u in data["units"]}
    assert [s["id"] for s in data["sets"]] == ["ffn/alpha/nig_top/0.25", "ffn/alpha/random/0.25#1",
                                               "ffn/alpha/random/0.25#2", "ffn/loo-beta/contrast_top/0.25",
                                               "head/alpha/nig_top/0.5"]
    assert [s["selected"] for s in data["sets"]] == [True, False, False, True, True]
    # every set containing the unit, random ones included
    assert sets_of(data, unit(data, "ffn:1:2")) == ["ffn/alpha/nig_top/0.25", "ffn/alpha/random/0.25#2",
                                                   "ffn/loo-beta/contrast_top/0.25"]
    assert sets_of(data, unit(data, "ffn:0:1")) == ["ffn/alpha/nig_top/0.25", "ffn/alpha/random/0.25#1"]
    assert sets_of(data, unit(data, "head:1:0")) == ["head/alpha/nig_top/0.5"]  # heads and FFN never mix
    json.dumps(data, allow_nan=False)


def test_card_numbers_and_error_bar_std_over_sqrt_n(study):
    data = explorer.build(**explorer.collect(study))
    u = unit(data, "ffn:1:2")
    c = cell(data, u, "alpha", "relevant", "total")
    assert c["mean"] == pytest.approx(0.12) and c["std"] == pytest.approx(0.4) and c["n"] == 16
    assert c["se"] == pytest.approx(0.4 / math.sqrt(16)) == pytest.approx(0.1)
    assert c["absact"] == pytest.approx(2.2)
    c = cell(data, u, "beta", "non_relevant", "passage")
    assert c["mean"] == pytest.approx(-0.12) and c["se"] == pytest.approx(0.1)
    assert cell(data, u, "beta", "all", "query")["se"] == pytest.approx(0.4 / math.sqrt(32), rel=1e-4)  # 5 digits kept
    assert cell(data, unit(data, "head:1:0"), "alpha", "relevant", "total")["mean"] == pytest.approx(0.1)


def test_pruning_effect_is_set_minus_unpruned_per_dataset_and_target(study):
    data = explorer.build(**explorer.collect(study))
    assert data["unpruned"] == UNPRUNED and data["metric"] == "ndcg@10"
    by_id = {s["id"]: sorted((p["dataset"], p["target"], p["value"], p["delta"]) for p in s["pruning"])
             for s in data["sets"]}
    assert by_id["ffn/alpha/nig_top/0.25"] == [("alpha", "ffn", 0.3, pytest.approx(-0.2)),
                                               ("alpha", "ffn-passage", 0.45, pytest.approx(-0.05))]
    assert by_id["ffn/alpha/random/0.25#1"] == [("alpha", "ffn", 0.48, pytest.approx(-0.02))]
    assert by_id["ffn/alpha/random/0.25#2"] == [("alpha", "ffn", 0.46, pytest.approx(-0.04))]
    assert by_id["ffn/loo-beta/contrast_top/0.25"] == [("beta", "ffn", 0.35, pytest.approx(-0.05))]
    assert by_id["head/alpha/nig_top/0.5"] == [("alpha", "head", 0.42, pytest.approx(-0.08))]


def test_top_tokens_are_the_largest_per_token_conductances_with_context(study):
    data = explorer.build(**explorer.collect(study))
    hits = unit(data, "ffn:1:2")["top_tokens"]
    assert [(h["pair_id"], h["position"], h["value"]) for h in hits[:4]] == [
        ("q1:d2", 5, -0.9), ("q1:d1", 2, 0.5), ("q1:d2", 9, 0.4), ("q1:d1", 6, 0.3)]
    top = hits[0]
    assert top["token"] == "swept" and top["part"] == "passage" and top["cls"] == "non_relevant"
    assert top["length"] == len(TOKENS)
    assert top["left"] == TOKENS[max(0, 5 - explorer.CONTEXT):5] and top["right"] == TOKENS[6:6 + explorer.CONTEXT]
    assert len(hits) == explorer.TOP_TOKENS
    assert unit(data, "ffn:2:3")["top_tokens"] is None  # not in the file
    assert data["per_token"] == {"pairs": 2, "units": 3, "provenance": {"seed": 0}}


def test_per_token_file_is_optional(study):
    (study / "explorer" / "neuron_tokens.json").unlink()
    data = explorer.build(**explorer.collect(study))
    assert data["per_token"] is None and all(u["top_tokens"] is None for u in data["units"])


def test_pairs_and_a_self_contained_page(study):
    path = explorer.build_explorer(study)
    assert path == study / "explorer" / "index.html"
    html = path.read_text()
    assert html.count("</script>") == 2  # the token "</script><b>" cannot close the data block
    assert "/*EXPLORER_" not in html and "__EXPLORER_" not in html
    assert "<link" not in html and " src=" not in html  # nothing to fetch: works from file://, offline
    start = html.index('id="explorer-data">') + len('id="explorer-data">')
    data = json.loads(html[start:html.index("</script>", start)])
    assert [p["pair_id"] for p in data["pairs"]] == ["q1:d1", "q1:d2"]
    assert data["pairs"][0]["tokens"] == TOKENS and data["pairs"][0]["attribution"][2] == pytest.approx(-0.6)


def test_neuron_tokens_record_concatenates_streams_and_round_trips(study):
    import numpy as np

    from irneurons.attribution.conductance import Attribution

    # two bi-encoder pairs: stream 0 the query pass, stream 1 the passage pass, right-padded to 4 tokens
    toks = [[["[CLS]", "wing", "[SEP]"], ["[CLS]", "swept", "wing", "[SEP]"]], [["[CLS]", "flutter", "[SEP]"], ["[CLS]", "x", "[SEP]"]]]
    parts = [[[0, 1, 2], [4, 3, 3, 4]], [[0, 1, 2], [4, 3, 4]]]
    ffn = np.zeros((2, 2, 4, 2))
    ffn[0, 1, 1, 1] = -0.123456  # ffn:3:9 at "swept" of pair 0
    ffn[1, 0, 1, 1] = 0.5
    ffn[0, 0, 3] = ffn[1, :, 3] = 99.0  # padding of the 3-token streams: never read
    heads = np.full((2, 2, 4, 1), 0.25)
    meta = dict(pair_ids=["q1:d1", "q2:d5"], parts=["query_cls", "query", "query_sep", "passage", "passage_special", "pad"],
                layers=["encoder.0"], tokens=toks, token_parts=parts)
    attr = Attribution({"ffn_tokens": ffn, "ffn_token_units": np.array([[1, 2], [3, 9]]), "heads_tokens": heads,
                        "heads_token_units": np.array([[0, 1]])}, meta)
    rec = explorer.neuron_tokens_record(attr, ["alpha", "beta"], ["relevant", "non_relevant"], provenance={"seed": 0})
    assert rec["pairs"][0] == {"pair_id": "q1:d1", "dataset": "alpha", "class": "relevant",
                               "tokens": ["[CLS]", "wing", "[SEP]", "[CLS]", "swept", "wing", "[SEP]"],
                               "parts": ["query_cls", "query", "query_sep", "passage_special", "passage", "passage",
                                         "passage_special"]}
    assert list(rec["units"]) == ["ffn:1:2", "ffn:3:9", "head:0:1"]
    assert rec["units"]["ffn:3:9"] == [[1, 1, 0.5], [0, 4, -0.1235]]  # by |value|, positions in the joined list
    assert rec["units"]["ffn:1:2"] == []  # its only non-zero values sit in padding, which is never read
    assert len(rec["units"]["head:0:1"]) == explorer.TOP_TOKENS  # 13 equal hits: the first 8 by pair, position
    assert rec["units"]["head:0:1"][:2] == [[0, 0, 0.25], [0, 1, 0.25]]
    assert all(pos < len(rec["pairs"][i]["tokens"]) for rows in rec["units"].values() for i, pos, _ in rows)
    with pytest.raises(ValueError, match="2 pairs but 1 datasets"):
        explorer.neuron_tokens_record(attr, ["alpha"], ["relevant", "relevant"])
    write_json(study / "explorer" / "neuron_tokens.json", rec)  # what the explorer reads back
    hits = explorer.top_tokens(json.loads((study / "explorer" / "neuron_tokens.json").read_text()), ["ffn:3:9"])
    assert [(h["pair_id"], h["token"], h["part"], h["value"], h["cls"]) for h in hits["ffn:3:9"][:2]] == [
        ("q2:d5", "flutter", "query", 0.5, "non_relevant"), ("q1:d1", "swept", "passage", -0.1235, "relevant")]


def test_pick_pairs_spreads_each_label_over_queries():
    pairs = pd.DataFrame({"pair_id": ["q2:d1", "q1:d3", "q1:d2", "q1:d1", "q3:d1"], "label": [1, 0, 1, 1, 0]})
    assert explorer.pick_pairs(pairs, 2)["pair_id"].tolist() == ["q1:d1", "q2:d1", "q1:d3", "q3:d1"]
    assert explorer.pick_pairs(pairs, 3)["pair_id"].tolist() == ["q1:d1", "q2:d1", "q1:d2", "q1:d3", "q3:d1"]
    assert explorer.pick_pairs(pairs, 0).empty


# ---- the page in headless Chromium ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium():
    import os

    exe, why = ensure_chromium()
    if not exe and os.environ.get("IRNEURONS_BROWSER_INSTALL") == "1":
        pytest.fail(f"browser test opted in (IRNEURONS_BROWSER_INSTALL=1) but: {why}")  # CI must not skip it
    if not exe:
        pytest.skip(f"browser test: {why}")
    return exe


ROW_IDS = "[...document.querySelectorAll('#units tbody tr')].map((tr) => tr.dataset.id)"


def select_value(page, element_id, value):
    page.eval(f"(() => {{ const s = document.getElementById({element_id!r}); s.value = {value!r};"
              f" s.dispatchEvent(new Event('change')); }})()")


def png_colours(png: bytes) -> int:
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    assert image.size == (1400, 900)
    return len(image.getcolors(maxcolors=1 << 24))


def test_page_in_headless_chromium(study, chromium, tmp_path):
    page_path = explorer.build_explorer(study)
    with Browser(chromium, width=1400, height=900) as page:
        page.open(page_path.as_uri())
        assert page.eval("document.body.dataset.ready") == "1"
        assert sorted(page.eval(ROW_IDS)) == sorted(SELECTED)
        assert page.eval("document.getElementById('count').textContent") == "6 of 6 units shown"

        select_value(page, "filter-layer", "2")
        assert sorted(page.eval(ROW_IDS)) == ["ffn:2:2", "ffn:2:3"]
        assert page.eval("document.getElementById('count').textContent") == "2 of 6 units shown"

        assert page.eval("document.getElementById('card').hidden") is True
        page.eval("document.querySelector('#units tbody tr[data-id=\"ffn:2:3\"]').click()")
        card = page.eval("""(() => {
            const q = (s) => document.querySelector(s);
            const row = q('#card-stats tr[data-dataset="alpha"][data-class="relevant"][data-part="total"]');
            return {hidden: q('#card').hidden, title: q('#card-title').textContent,
                    mean: row.querySelector('.mean').textContent, se: row.querySelector('.se').textContent,
                    absact: row.querySelector('.absact').textContent,
                    sets: [...document.querySelectorAll('#card-sets tbody tr')].map((tr) => tr.textContent),
                    charts: document.querySelectorAll('#card-charts svg.chart').length,
                    errorbars: document.querySelectorAll('#card-charts .errorbar').length,
                    tokens: q('#card-tokens').textContent};
        })()""")
        assert card["hidden"] is False and card["title"] == "ffn:2:3"
        assert (card["mean"], card["se"], card["absact"]) == ("0.230", "0.100", "3.30")  # 0.4 / sqrt(16)
        assert card["sets"] == ["ffn/alpha/nig_top/0.25alphaffn0.300-0.200",
                                "ffn/alpha/nig_top/0.25alphaffn-passage0.450-0.0500"]
        assert card["charts"] == 2 and card["errorbars"] == 2 * 3 * 7
        assert card["tokens"] == "no per-token data for this unit"

        select_value(page, "filter-layer", "")
        page.eval("document.querySelector('#units thead th[data-key=\"layer\"]').click()")
        layers = [int(i.split(":")[1]) for i in page.eval(ROW_IDS)]
        assert layers == sorted(layers, reverse=True)
        page.eval("document.querySelector('#units tbody tr[data-id=\"ffn:1:2\"]').click()")
        hits = page.eval("[...document.querySelectorAll('#card-tokens .hit .tok')].map((t) => t.textContent)")
        assert hits[:3] == ["swept", "flutter", "test"]
        first = page.eval("document.querySelector('#card-tokens .hit').textContent")
        assert first.startswith("… wing flutter [SEP] the swept wing </script><b> flutter test …")  # 4 either side
        sets = page.eval("[...document.querySelectorAll('#card-sets tbody tr')].map((tr) => tr.dataset.set)")
        assert sets == ["ffn/alpha/nig_top/0.25", "ffn/alpha/nig_top/0.25", "ffn/loo-beta/contrast_top/0.25",
                        "ffn/alpha/random/0.25#2"]  # selected sets first, then the random one containing it
        page.screenshot(tmp_path / "card.png")

        page.eval("document.getElementById('tab-pairs').click()")
        pairs = page.eval("""(() => {
            const toks = [...document.querySelectorAll('#pairs .pair .tok')];
            const bg = toks.map((t) => getComputedStyle(t).backgroundColor);
            return {units_hidden: document.getElementById('view-units').hidden, pairs: document.querySelectorAll('#pairs .pair').length,
                    tokens: toks.map((t) => t.textContent), red: bg.filter((c) => c.includes('214, 38, 41')).length,
                    blue: bg.filter((c) => c.includes('31, 119, 181')).length};
        })()""")
        assert pairs["units_hidden"] is True and pairs["pairs"] == 2
        assert pairs["tokens"] == TOKENS + TOKENS  # "</script><b>" shown as text
        assert pairs["red"] >= 8 and pairs["blue"] >= 8
        page.screenshot(tmp_path / "pairs.png")

        page.eval("document.getElementById('tab-units').click()")
        png = page.screenshot(tmp_path / "explorer.png")
        assert (tmp_path / "explorer.png").stat().st_size > 10_000
        assert png_colours(png) > 200  # text, bars, chart markers: far from a blank page
        assert page.errors == []

        (study / "explorer" / "neuron_tokens.json").unlink()
        explorer.build_explorer(study, tmp_path / "plain" / "index.html")
        page.open((tmp_path / "plain" / "index.html").as_uri())
        page.eval("document.querySelector('#units tbody tr[data-id=\"ffn:1:2\"]').click()")
        assert page.eval("document.getElementById('card-tokens').textContent").startswith("no per-token data")
        assert page.errors == []
