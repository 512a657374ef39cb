import numpy as np
import pandas as pd
import pytest

from irneurons import evaluate, study


def record(dataset, values, strategy="unpruned", scheme="fusion-all", fraction=0.01, count=10, target="ffn"):
    per_query = {f"q{i}": {"ndcg@10": float(v)} for i, v in enumerate(values)}
    return {"dataset": dataset, "target": target, "scheme": scheme, "strategy": strategy, "fraction": fraction,
            "count": count, "per_query": per_query, "mean": {"ndcg@10": float(np.mean(values))}}


@pytest.fixture
def study_records():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.3, 0.7, 40)
    unpruned = {"d": record("d", base)}
    pruned = [
        record("d", base - 0.2 + rng.normal(0, 0.01, 40), "nig_top"),
        record("d", base + rng.normal(0, 0.01, 40), "nig_bottom"),
        *[record("d", base - 0.01 * (i + 1) + rng.normal(0, 0.01, 40), f"random-{i}") for i in range(3)],
        record("d", base - 0.05 + rng.normal(0, 0.01, 40), "nig_top", scheme="ood", count=7),
    ]
    return unpruned, pruned, base


def test_comparisons_deltas_pooling_and_holm(study_records):
    unpruned, pruned, base = study_records
    table = study.comparisons(unpruned, pruned)
    vs = table[table["comparison"] == "unpruned"]
    assert len(vs) == 6 and len(table) == 6 + 3 + 1  # + nig_top vs each random seed + pooled
    top = study.per_query(pruned[0])
    row = vs[(vs["strategy"] == "nig_top") & (vs["scheme"] == "fusion-all")]
    assert row["delta"].item() == pytest.approx((top - base).mean())
    assert row["t_p"].item() < 1e-10
    pooled = pd.concat([study.per_query(r) for r in pruned[2:5]], axis=1).mean(axis=1)
    row = table[table["comparison"] == "random (pooled)"]
    assert row["delta"].item() == pytest.approx((top - pooled).mean())
    assert row["mean_b"].item() == pytest.approx(pooled.mean())
    # Holm over the dataset's whole family of tests
    np.testing.assert_allclose(table["t_p_holm"], evaluate.holm(table["t_p"].to_numpy()))
    assert (table["t_p_holm"] >= table["t_p"]).all()
    # the ood scheme has no random comparator: only its test vs unpruned
    assert table[table["scheme"] == "ood"]["comparison"].tolist() == ["unpruned"]


def test_summary_reports_each_strategy(study_records):
    unpruned, pruned, _ = study_records
    table = study.comparisons(unpruned, pruned)
    summ = study.summary(table, unpruned)
    row = summ[summ["scheme"] == "fusion-all"].iloc[0]
    assert row["units"] == 10 and row["Δ nig_top"].endswith("*** (p <0.001)")
    assert float(row["Δ nig_top"].split("*")[0]) == pytest.approx(-0.2, abs=0.01)
    deltas = table[(table["comparison"] == "unpruned") & table["strategy"].str.startswith("random-")]["delta"]
    assert row["Δ random (mean ± sd)"] == f"{deltas.mean():+.4f} ± {deltas.std(ddof=1):.4f} (n=3)"
    assert summ[summ["scheme"] == "ood"].iloc[0]["Δ magnitude"] == ""
    md = study.summary_markdown(table, unpruned)
    assert md.count("\n| d |") == 2 and "Holm" in md
