import numpy as np
import pytest

from irneurons.study import selection as select
from irneurons.study import stability


def synthetic(n_queries=24, pairs_per_query=6, n_units=200, signal=None, seed=0):
    """Per-pair matrix: every pair has large conductance on units 0-9 (any pair, no relevance), relevant
    pairs additionally on ``signal`` units (relevance-specific), noise elsewhere."""
    rng = np.random.default_rng(seed)
    qid = np.repeat([f"q{i}" for i in range(n_queries)], pairs_per_query)
    label = np.tile([1, 0] * (pairs_per_query // 2), n_queries)
    X = rng.normal(0, 1, (len(qid), n_units))
    X[:, :10] += 8.0
    if signal is not None:
        X[np.ix_(label == 1, signal)] += 4.0
    return {"X": X, "label": label, "qid": qid, "pair_id": np.arange(len(qid)), "n_layers": 2,
            "n_units": n_units // 2}


def test_query_halves_never_share_a_query_and_hold_both_classes():
    data = synthetic()
    data["label"][data["qid"] == "q3"] = 1  # a query with relevant pairs only
    for seed in range(5):
        half = stability.query_halves(data["qid"], data["label"], seed)
        q0, q1 = set(data["qid"][half == 0]), set(data["qid"][half == 1])
        assert not q0 & q1 and q0 | q1 == set(data["qid"])
        for h in (0, 1):
            assert set(data["label"][half == h]) == {0, 1}
    # a pair-level split (the old one) would put q0's pairs in both halves: the test above would fail
    assert stability.query_halves(data["qid"], data["label"], 0).tolist() != \
        stability.query_halves(data["qid"], data["label"], 1).tolist()


def test_permutation_keeps_each_querys_class_counts():
    data = synthetic()
    perm = stability.permute_within_queries(data["qid"], data["label"], np.random.default_rng(0))
    assert (perm != data["label"]).any()
    for q in np.unique(data["qid"]):
        m = data["qid"] == q
        assert perm[m].sum() == data["label"][m].sum()


def test_relevant_top_set_is_stable_but_not_beyond_the_permutation_null():
    data = synthetic()  # units 0-9 top every set of pairs, whatever the labels
    res = stability.stability({"d": data}, "relevant", 0.05, n_splits=4, n_permutations=19, seed=0)
    assert res["k"] == 10 and res["jaccard"] > 0.9 and res["chance"] < 0.05
    assert res["null_mean"] > 0.9 and res["p_perm"] > 0.05  # stable, but not specific to relevance
    assert 0.05 < res["spearman"] < 0.5  # 10 shared units, 190 noise units


def test_contrast_top_set_beats_the_permutation_null():
    data = synthetic(signal=list(range(100, 110)))
    res = stability.stability({"d": data}, "contrast", 0.05, n_splits=4, n_permutations=19, seed=0)
    assert res["jaccard"] > 0.8 and res["null_mean"] < 0.3
    assert res["p_perm"] == pytest.approx(1 / 20)  # beyond every permutation
    welch = stability.stability({"d": data}, "contrast", 0.05, n_splits=2, n_permutations=19, standardise=True)
    assert welch["jaccard"] > 0.8


def test_stability_table_fuses_datasets():
    a, b = synthetic(seed=1, signal=list(range(100, 110))), synthetic(seed=2, signal=list(range(100, 110)))
    table = stability.stability_table({"ffn": {"a": a, "b": b}}, {"ffn": [0.05]}, ("relevant", "contrast"),
                                      n_splits=2, n_permutations=19)
    assert set(table["scheme"]) == {"a", "b", "fusion-all"} and len(table) == 6
    assert table["chance"].iloc[0] == pytest.approx(select.chance_jaccard(200, 10))
