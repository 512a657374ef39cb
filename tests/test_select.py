import itertools

import numpy as np
import pandas as pd
import pytest

from irneurons.study import selection as select


def series(values, layers=2):
    n = len(values) // layers
    idx = pd.MultiIndex.from_tuples([(l, u) for l in range(layers) for u in range(n)], names=["layer", "unit"])
    return pd.Series(values, index=idx, dtype=float)


def test_top_k_exact_with_deterministic_ties():
    s = series([5, 1, 3, 3, 3, 0])  # ties at 3: (0,2) (1,0) (1,1)
    assert select.top_k(s, 2) == [(0, 0), (0, 2)]
    assert select.top_k(s, 3) == [(0, 0), (0, 2), (1, 0)]
    assert len(select.top_k(s, 4)) == 4
    assert select.bottom_k(s, 1) == [(1, 2)]
    assert select.k_for_fraction(9216, 0.001) == 9 and select.k_for_fraction(10, 0.001) == 1


def test_intersection_subset_and_fusion_mean():
    rng = np.random.default_rng(0)
    d = {name: series(rng.normal(size=40)) for name in "abc"}
    inter = select.intersection(d, 10)
    for s in d.values():
        assert set(inter) <= set(select.top_k(s, 10))
    fused = select.fusion(d, "none")
    assert fused[(1, 3)] == pytest.approx(np.mean([s[(1, 3)] for s in d.values()]))
    assert select.top_k(fused, 5) == select.top_k((d["a"] + d["b"] + d["c"]) / 3, 5)
    z = select.fusion(d)  # default: per-dataset z-score first
    zs = {k: (v - v.mean()) / v.std(ddof=0) for k, v in d.items()}
    assert z[(1, 3)] == pytest.approx(np.mean([s[(1, 3)] for s in zs.values()]))


def test_ood_units_and_jaccard():
    ind = series([9, 8, 1, 0])
    ood = series([9, 0, 8, 1])
    got = select.ood_units({"in": ind, "out": ood}, {"in": "in_domain", "out": "ood"}, 2)
    assert got == [(1, 0)]  # (0,0) is top in both; (1,0) only in the OOD top-2
    assert select.jaccard([1, 2], [2, 3]) == pytest.approx(1 / 3)


def test_chance_jaccard_matches_enumeration():
    n, k = 6, 2
    subsets = list(itertools.combinations(range(n), k))
    exact = np.mean([select.jaccard(a, b) for a in subsets for b in subsets])
    assert select.chance_jaccard(n, k) == pytest.approx(exact)


def test_random_units_reproducible():
    units = [(l, u) for l in range(3) for u in range(50)]
    a = select.random_units(units, 10, seed=3)
    assert a == select.random_units(units, 10, seed=3) and a != select.random_units(units, 10, seed=4)
    assert len(set(a)) == 10


def long_table(nig_values, absact=None, unit_type="ffn", layers=2, nonrel=None):
    """A neurons long table for one unit type with relevant/total means ``nig_values`` (and |act| for all/total)."""
    n = len(nig_values) // layers
    idx = [(l, u) for l in range(layers) for u in range(n)]
    absact = np.zeros(len(idx)) if absact is None else absact
    nonrel = np.zeros(len(idx)) if nonrel is None else nonrel
    rows = [(unit_type, l, u, "total", "relevant", v, 1.0, 10, np.nan) for (l, u), v in zip(idx, nig_values)]
    rows += [(unit_type, l, u, "total", "non_relevant", v, 1.0, 10, np.nan) for (l, u), v in zip(idx, nonrel)]
    rows += [(unit_type, l, u, "total", "all", 0.0, 1.0, 20, a) for (l, u), a in zip(idx, absact)]
    columns = ["unit_type", "layer", "unit", "part", "class", "mean", "std", "n", "absact_mean"]
    return pd.DataFrame(rows, columns=columns)


ROLES = {"a": "in_domain", "b": "in_domain", "c": "ood"}


def three_tables(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return {d: long_table(rng.normal(size=n), rng.random(n)) for d in ROLES}


def test_parse_scheme_strategy_and_relative_schemes():
    assert select.parse_scheme("a", ROLES) == ("single", ["a"])
    assert select.parse_scheme("fusion-in_domain", ROLES) == ("fusion", ["a", "b"])
    assert select.parse_scheme("intersection-all", ROLES) == ("intersection", ["a", "b", "c"])
    assert select.parse_scheme("loo-b", ROLES) == ("fusion", ["a", "c"])  # never selected on b
    assert select.resolve_scheme("loo", "b") == "loo-b" and select.resolve_scheme("self", "b") == "b"
    assert select.resolve_scheme("fusion-all", "b") == "fusion-all"
    assert select.parse_strategy_entry("random", 8, 4) == ("random", 8)
    assert select.parse_strategy_entry("random_layer_matched", 8, 4) == ("random_layer_matched", 4)
    assert select.parse_strategy_entry("random:20", 8, 4) == ("random", 20)
    assert select.parse_strategy_entry("nig_top", 8, 4) == ("nig_top", 1)
    with pytest.raises(ValueError, match="unknown scheme 'fusion-xyz'"):
        select.parse_scheme("fusion-xyz", ROLES)
    with pytest.raises(ValueError, match="at least two datasets"):
        select.parse_scheme("loo-a", {"a": "in_domain"})
    with pytest.raises(ValueError, match="unknown strategy 'nig_bottom'"):
        select.parse_strategy("nig_bottom")
    with pytest.raises(ValueError, match="only random strategies"):
        select.parse_strategy_entry("nig_top:3", 8, 4)


def spec(scheme, strategy, fraction, seed=0, n_sets=1, **score):
    """A SelectionSpec of FFN units (``score``: ScoreOptions fields)."""
    return select.SelectionSpec(scheme, strategy, "ffn", fraction, select.ScoreOptions(**score), seed, n_sets)


def test_default_grid_adapts_to_the_datasets():
    assert set(select.default_grid({"a": "in_domain"})) == {"self"}
    assert set(select.default_grid({"a": "in_domain", "b": "in_domain"})) == {"self", "loo"}
    assert set(select.default_grid(ROLES)) == {"self", "loo", "ood"}


def test_zscore_fusion_is_not_dominated_by_the_larger_scale():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=200), rng.normal(size=200)
    tables = {"a": long_table(a), "b": long_table(1000 * b)}  # b's conductance scale is 1000x a's
    roles = {"a": "in_domain", "b": "in_domain"}
    raw = select.select_units(tables, roles, spec("fusion-all", "nig_top", 0.05, normalise_by="none"))
    z = select.select_units(tables, roles, spec("fusion-all", "nig_top", 0.05))
    top_b = set(select.top_k(series(1000 * b), 10))
    assert {tuple(u) for u in raw["units"]} == top_b  # unnormalised: b's own top set, a ignored
    assert {tuple(u) for u in z["units"]} != top_b
    assert z["from_member_top_k"]["a"] >= 3 and z["from_member_top_k"]["b"] >= 3
    assert raw["from_member_top_k"] == {"a": len(set(select.top_k(series(a), 10)) & top_b), "b": 10}
    rank = select.select_units(tables, roles, spec("fusion-all", "nig_top", 0.05, normalise_by="rank"))
    assert {tuple(u) for u in rank["units"]} != top_b


def test_strategies_remove_exactly_the_nig_sets_count_and_layers():
    tables = three_tables(n=60)
    sel = lambda scheme, strategy, n_sets=1: select.select_units(tables, ROLES, spec(scheme, strategy, 0.25, seed=7,
                                                                                    n_sets=n_sets))
    top = sel("fusion-all", "nig_top")
    assert top["k"] == 15 and top["count"] == 15 and top["n_units"] == 60
    fused = select.fusion({d: select.scores(t, "ffn") for d, t in tables.items()})
    assert [tuple(u) for u in top["units"]] == sorted(select.top_k(fused, 15))
    assert [tuple(u) for u in sel("fusion-all", "nig_negative")["units"]] == sorted(select.bottom_k(fused, 15))
    least = sel("fusion-all", "nig_least")["units"]
    scaled = sum(select.scores(t, "ffn", signed=False) / select.scores(t, "ffn", signed=False).std(ddof=0)
                 for t in tables.values())
    assert [tuple(u) for u in least] == sorted(select.bottom_k(scaled, 15))
    per_layer = select.layer_counts(top["units"], 2)
    for strategy in select.STRATEGIES:
        res = sel("fusion-all", strategy, n_sets=3)
        assert all(len(s) == 15 for s in res["sets"]), strategy
    lm = sel("fusion-all", "random_layer_matched", n_sets=5)
    assert lm["n_sets"] == 5 and len({tuple(map(tuple, s)) for s in lm["sets"]}) == 5
    assert all(select.layer_counts(s, 2) == per_layer for s in lm["sets"])
    rnd = sel("fusion-all", "random", n_sets=4)
    assert all(len({tuple(u) for u in s}) == 15 for s in rnd["sets"])
    # random sets depend only on the count: the first sets stay when more are asked, same for every scheme
    assert sel("fusion-all", "random", n_sets=2)["sets"] == rnd["sets"][:2] == sel("a", "random", n_sets=2)["sets"]
    # intersection: a subset of every member's top-k; the other strategies remove as many units
    inter = sel("intersection-all", "nig_top")
    for t in tables.values():
        assert {tuple(u) for u in inter["units"]} <= set(select.top_k(select.scores(t, "ffn"), 15))
    assert sel("intersection-all", "random")["count"] == inter["count"] < 15
    assert all(len(s) == inter["count"] for s in sel("intersection-all", "random_layer_matched", n_sets=2)["sets"])
    # ood: in the OOD top-k, not in the in-domain fusion's top-k
    ood = {tuple(u) for u in sel("ood", "nig_top")["units"]}
    ind = {d: select.scores(tables[d], "ffn") for d in ("a", "b")}
    assert ood == set(select.top_k(select.scores(tables["c"], "ffn"), 15)) - set(select.top_k(select.fusion(ind), 15))
    ood_lm = sel("ood", "random_layer_matched", n_sets=3)
    assert all(select.layer_counts(s, 2) == select.layer_counts(ood, 2) for s in ood_lm["sets"])


def test_contrast_score_and_contrast_top():
    rel = np.array([5.0, 5.0, 1.0, 0.0, 0.0, 0.0])
    non = np.array([5.0, 4.0, 0.0, 0.0, 0.0, -1.0])  # unit (0,0) is large on every pair: no contrast
    t = {"a": long_table(rel, nonrel=non)}
    c = select.scores(t["a"], "ffn", "contrast")
    np.testing.assert_allclose(c.to_numpy(), rel - non)
    assert select.select_units(t, {"a": "in_domain"}, spec("a", "nig_top", 0.34))["units"] == [[0, 0], [0, 1]]
    # contrast 0,1,1,0,0,1: the top 2 by (layer, unit) among the ties, never the large-everywhere unit (0,0)
    assert select.select_units(t, {"a": "in_domain"}, spec("a", "contrast_top", 0.34))["units"] == [[0, 1], [0, 2]]
    welch = select.scores(t["a"], "ffn", "contrast", standardise=True)  # sd 1, n 10 per class: se = sqrt(0.2)
    np.testing.assert_allclose(welch.to_numpy(), (rel - non) / np.sqrt(0.2))


def test_write_selection_from_a_spec(tmp_path):
    import json

    tables = three_tables(n=40, seed=3)
    paths = {}
    for d, t in tables.items():
        paths[d] = tmp_path / f"{d}.parquet"
        t.to_parquet(paths[d])
    score = select.ScoreOptions.from_config({"class": "relevant", "normalise": "rank", "signed": False})
    assert score == select.ScoreOptions(cls="relevant", part="total", signed=False, normalise_by="rank")
    spec_ = select.SelectionSpec("fusion-in_domain", "random_layer_matched", "ffn", 0.2, score, seed=5, n_sets=2)
    out = select.write_selection(tmp_path / "sel.json", {d: paths[d] for d in ("a", "b")}, ROLES, spec_,
                                 provenance={"run": "t"})
    saved = json.loads((tmp_path / "sel.json").read_text())
    assert saved == json.loads(json.dumps(out)) and saved["provenance"] == {"run": "t"}
    assert saved["score"] == {"class": "relevant", "part": "total", "signed": False, "normalise": "rank",
                              "standardise": False}
    # the NIG set: top-8 of the rank-normalised fusion of |mean| over a and b; each random set has its layer counts
    fused = select.fusion({d: select.scores(tables[d], "ffn", signed=False) for d in ("a", "b")}, "rank")
    counts = select.layer_counts(select.top_k(fused, 8), 2)
    assert saved["k"] == 8 and saved["n_sets"] == 2 and saved["per_layer"] == [counts, counts]
    assert saved["sets"][0] != saved["sets"][1]
