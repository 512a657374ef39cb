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
