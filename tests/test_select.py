import itertools

import numpy as np
import pandas as pd
import pytest

from irneurons import select


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
    fused = select.fusion(d)
    assert fused[(1, 3)] == pytest.approx(np.mean([s[(1, 3)] for s in d.values()]))
    assert select.top_k(fused, 5) == select.top_k((d["a"] + d["b"] + d["c"]) / 3, 5)


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


def long_table(nig_values, absact=None, unit_type="ffn", layers=2):
    """A neurons long table for one unit type with relevant/total means ``nig_values`` (and |act| for all/total)."""
    n = len(nig_values) // layers
    idx = [(l, u) for l in range(layers) for u in range(n)]
    absact = np.zeros(len(idx)) if absact is None else absact
    rows = [(unit_type, l, u, "total", "relevant", v, np.nan) for (l, u), v in zip(idx, nig_values)]
    rows += [(unit_type, l, u, "total", "all", 0.0, a) for (l, u), a in zip(idx, absact)]
    return pd.DataFrame(rows, columns=["unit_type", "layer", "unit", "part", "class", "mean", "absact_mean"])


ROLES = {"a": "in_domain", "b": "in_domain", "c": "ood"}


def three_tables(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return {d: long_table(rng.normal(size=n), rng.random(n)) for d in ROLES}


def test_parse_scheme_and_strategy():
    assert select.parse_scheme("a", ROLES) == ("single", ["a"])
    assert select.parse_scheme("fusion-in_domain", ROLES) == ("fusion", ["a", "b"])
    assert select.parse_scheme("intersection-all", ROLES) == ("intersection", ["a", "b", "c"])
    assert select.parse_strategy("random-2") == ("random", 2)
    with pytest.raises(ValueError, match="unknown scheme 'fusion-xyz'"):
        select.parse_scheme("fusion-xyz", ROLES)
    with pytest.raises(ValueError, match="unknown strategy 'random'"):
        select.parse_strategy("random")


def test_select_units_strategies_share_the_count():
    tables = three_tables()
    sel = lambda scheme, strategy, f=0.25: select.select_units(tables, ROLES, scheme, strategy, "ffn", f, seed=7)
    top = sel("fusion-all", "nig_top")
    assert top["k"] == 10 and top["count"] == 10 and top["n_units"] == 40
    fused = select.fusion({d: select.scores(t, "ffn") for d, t in tables.items()})
    assert [tuple(u) for u in top["units"]] == sorted(select.top_k(fused, 10))
    assert [tuple(u) for u in sel("fusion-all", "nig_bottom")["units"]] == sorted(select.bottom_k(fused, 10))
    mag = select.fusion({d: select.magnitude_scores(t, "ffn") for d, t in tables.items()})
    assert [tuple(u) for u in sel("fusion-all", "magnitude")["units"]] == sorted(select.top_k(mag, 10))
    # intersection: a subset of every member's top-k; the other strategies remove as many units
    inter = sel("intersection-all", "nig_top")
    for t in tables.values():
        assert {tuple(u) for u in inter["units"]} <= set(select.top_k(select.scores(t, "ffn"), 10))
    assert sel("intersection-all", "random-0")["count"] == inter["count"] < 10
    assert sel("intersection-all", "magnitude")["count"] == inter["count"]
    # random: reproducible per seed index, different across indices
    assert sel("fusion-all", "random-1")["units"] == sel("fusion-all", "random-1")["units"]
    assert sel("fusion-all", "random-1")["units"] != sel("fusion-all", "random-2")["units"]
    # ood: in the OOD top-k, not in the in-domain fusion's top-k
    ood = {tuple(u) for u in sel("ood", "nig_top")["units"]}
    ind = {d: select.scores(tables[d], "ffn") for d in ("a", "b")}
    assert ood == set(select.top_k(select.scores(tables["c"], "ffn"), 10)) - set(select.top_k(select.fusion(ind), 10))


def test_split_half_stability_identical_and_chance():
    rng = np.random.default_rng(0)
    v = rng.normal(size=200)
    rows = []
    for half, values in ((0, v), (1, v + 1e-9)):  # same ranking in both halves → J = 1
        for i, x in enumerate(values):
            rows.append(("ffn", i // 100, i % 100, "relevant", half, x))
    halves = pd.DataFrame(rows, columns=["unit_type", "layer", "unit", "class", "half", "mean"])
    res = select.split_half_stability(halves, "ffn", 0.05)
    assert res["k"] == 10 and res["jaccard"] == 1.0
    assert res["chance"] == pytest.approx(select.chance_jaccard(200, 10)) and res["chance"] < 0.05
    flipped = halves.assign(mean=np.where(halves["half"] == 1, -halves["mean"], halves["mean"]))
    assert select.split_half_stability(flipped, "ffn", 0.05)["jaccard"] == 0.0  # opposite rankings
