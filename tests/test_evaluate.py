import math

import numpy as np
import pandas as pd
import pytest

from irneurons.study import statistics
from irneurons.retrieval import evaluation as evaluate

QRELS = {"q1": {"a": 3, "b": 1, "c": 0}, "q2": {"x": 1}, "q3": {"r": 1}}


def test_metrics_match_hand_computation():
    run = {"q1": {"c": 3.0, "b": 2.0, "a": 1.0}, "q3": {f"n{i}": 20.0 - i for i in range(10)} | {"r": 1.0}}
    m = evaluate.per_query_metrics(run, QRELS)
    idcg = 3 / math.log2(2) + 1 / math.log2(3)
    dcg = 0 + 1 / math.log2(3) + 3 / math.log2(4)
    assert m.loc["q1", "ndcg@10"] == pytest.approx(dcg / idcg, abs=1e-4)  # 0.5869
    assert m.loc["q1", "mrr@10"] == pytest.approx(0.5)
    assert m.loc["q1", "map"] == pytest.approx((1 / 2 + 2 / 3) / 2, abs=1e-4)
    assert m.loc["q1", "recall@100"] == pytest.approx(1.0)
    # q2 absent from the run: every measure 0 (not dropped from the mean)
    assert (m.loc["q2"] == 0).all()
    # q3: the relevant doc sits at rank 11 — outside MRR@10 and nDCG@10, inside recall@100
    assert m.loc["q3", "mrr@10"] == 0 and m.loc["q3", "ndcg@10"] == 0
    assert m.loc["q3", "recall@100"] == 1.0
    assert evaluate.summarise(m)["ndcg@10"] == pytest.approx((dcg / idcg) / 3, abs=1e-4)


def test_relevance_level_makes_binary_measures_count_only_high_grades():
    """relevant_min_grade 2 (TREC DL): grade-1 documents stop counting for MRR@10, MAP, R@100; nDCG@10 keeps
    the graded gains and does not change."""
    qrels = {"q": {"a": 2, "b": 1, "c": 0, "d": 2, "e": 1, "f": 2}}  # f is relevant but never retrieved
    run = {"q": {"b": 6.0, "a": 5.0, "c": 4.0, "e": 3.0, "d": 2.0, "x": 1.0}}  # ranks b1 a2 c3 e4 d5 x6
    lo = evaluate.per_query_metrics(run, qrels).loc["q"]
    hi = evaluate.per_query_metrics(run, qrels, relevance_level=2).loc["q"]
    # gain ≥ 1 relevant: a b d e f — first at rank 1; precisions at the hits 1/1, 2/2, 3/4, 4/5 over 5 relevant
    assert lo["mrr@10"] == pytest.approx(1.0)
    assert lo["map"] == pytest.approx((1 + 1 + 3 / 4 + 4 / 5) / 5, abs=1e-4)
    assert lo["recall@100"] == pytest.approx(4 / 5, abs=1e-4)
    # gain ≥ 2 relevant: a d f — first at rank 2; precisions 1/2 (a), 2/5 (d) over 3 relevant
    assert hi["mrr@10"] == pytest.approx(1 / 2)
    assert hi["map"] == pytest.approx((1 / 2 + 2 / 5) / 3, abs=1e-4)
    assert hi["recall@100"] == pytest.approx(2 / 3, abs=1e-4)
    dcg = 1 / math.log2(2) + 2 / math.log2(3) + 0 + 1 / math.log2(5) + 2 / math.log2(6)
    idcg = 2 / math.log2(2) + 2 / math.log2(3) + 2 / math.log2(4) + 1 / math.log2(5) + 1 / math.log2(6)
    assert lo["ndcg@10"] == pytest.approx(dcg / idcg, abs=1e-4)
    assert hi["ndcg@10"] == lo["ndcg@10"]  # graded, unchanged by the relevance level


def test_zscore_fusion_and_run_file(tmp_path):
    run = pd.DataFrame({"qid": ["1", "1", "1", "2"], "doc_id": ["a", "b", "c", "d"], "score": [1.0, 2.0, 3.0, 5.0]})
    z = evaluate.zscore_per_query(run, "score")
    np.testing.assert_allclose(z[:3], [-1.224745, 0.0, 1.224745], atol=1e-6)
    assert z.iloc[3] == 0.0  # a single candidate has std 0 → z 0
    evaluate.write_trec_run(run, tmp_path / "r.trec", tag="t")
    lines = (tmp_path / "r.trec").read_text().splitlines()
    assert lines[0] == "1 Q0 c 1 3.000000 t" and lines[2] == "1 Q0 a 3 1.000000 t"


def test_holm_and_paired_tests():
    np.testing.assert_allclose(statistics.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    adj = statistics.holm([0.5, np.nan, 0.001])
    assert np.isnan(adj[1]) and adj[2] == pytest.approx(0.002) and adj[0] == pytest.approx(0.5)
    a = pd.Series([0.5, 0.6, 0.7, 0.8, 0.9], index=list("abcde"))
    b = pd.Series([0.4, 0.55, 0.5, 0.7, 0.6], index=list("edcba"))  # aligned by qid, not position
    t = statistics.paired_tests(a, b)
    from scipy import stats

    b_al = b.reindex(a.index)
    assert t["delta"] == pytest.approx((a - b_al).mean())
    assert t["t_p"] == pytest.approx(stats.ttest_rel(a, b_al).pvalue)
    assert math.isnan(statistics.paired_tests(a, a)["t_p"])
