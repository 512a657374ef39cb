import numpy as np
import pandas as pd
import pytest

from irneurons.study import statistics
from irneurons.study import claims as study


def set_entry(values):
    return {"per_query": {f"q{i}": {"ndcg@10": float(v)} for i, v in enumerate(values)},
            "mean": {"ndcg@10": float(np.mean(values))}}


def record(dataset, sets, strategy="unpruned", scheme=None, fraction=0.01, count=10, target="ffn"):
    """A pruning-job record holding one or several sets of per-query values."""
    sets = [sets] if np.ndim(sets) == 1 else sets
    rec = {"dataset": dataset, "target": target, "scheme": scheme or dataset, "strategy": strategy,
           "fraction": fraction, "count": count, "sets": [set_entry(v) for v in sets]}
    if len(sets) == 1:
        rec.update(rec["sets"][0])
    return rec


def two_dataset_study(seed=0, top_effect=-0.2, n_random=9):
    rng = np.random.default_rng(seed)
    unpruned, pruned = {}, []
    for d, other in (("a", "b"), ("b", "a")):
        base = rng.uniform(0.3, 0.7, 40)
        unpruned[d] = record(d, base)
        noisy = lambda shift: base + shift + rng.normal(0, 0.01, 40)
        pruned += [
            record(d, noisy(top_effect), "nig_top"),
            record(d, noisy(0.0), "contrast_top"),
            record(d, noisy(0.0), "nig_least"),
            record(d, [noisy(0.002 * (i - 4)) for i in range(n_random)], "random"),
            record(d, [noisy(-0.01) for _ in range(4)], "random_layer_matched"),
            record(d, noisy(top_effect / 2), "nig_top", scheme=f"loo-{d}"),
            record(d, [noisy(0.0) for _ in range(4)], "random_layer_matched", scheme=f"loo-{d}"),
        ]
    return unpruned, pruned


def test_primary_family_and_grouping_with_two_datasets():
    unpruned, pruned = two_dataset_study()
    table = study.comparisons(unpruned, pruned)
    prim = table[table["family"] == "primary"]
    # exactly: nig_top own set, nig_top loo set, contrast_top own set vs random, on each dataset
    assert sorted(zip(prim["dataset"], prim["scheme"], prim["strategy"])) == [
        ("a", "a", "contrast_top"), ("a", "a", "nig_top"), ("a", "loo-a", "nig_top"),
        ("b", "b", "contrast_top"), ("b", "b", "nig_top"), ("b", "loo-b", "nig_top")]
    assert (prim["comparison"] == "random").all()
    assert set(prim["claim"]) == {"exist", "shared", "specific"}
    # the loo set is compared with the random sets evaluated under the dataset's own scheme (same count)
    assert set(prim.loc[prim["scheme"].str.startswith("loo"), "null_scheme"]) == {"a", "b"}
    # Holm over exactly the primary family; exploratory rows are not adjusted
    np.testing.assert_allclose(prim["t_p_holm"], statistics.holm(prim["t_p"].to_numpy()))
    assert table.loc[table["family"] == "exploratory", "t_p_holm"].isna().all()
    expl = table[(table["family"] == "exploratory") & (table["comparison"] != "unpruned")]
    assert set(expl["comparison"]) == {"random", "random_layer_matched"}
    assert set(expl.loc[expl["comparison"] == "random_layer_matched", "strategy"]) == {"nig_top"}
    # adding an exploratory strategy does not change any primary p-value
    extra = pruned + [record("a", unpruned["a"]["sets"] and np.full(40, 0.5), "magnitude")]
    again = study.comparisons(unpruned, extra)
    np.testing.assert_allclose(again[again["family"] == "primary"]["t_p_holm"].to_numpy(), prim["t_p_holm"].to_numpy())


def test_null_views_rank_prediction_and_paired():
    unpruned, pruned = two_dataset_study()
    table = study.comparisons(unpruned, pruned)
    row = table[(table["dataset"] == "a") & (table["scheme"] == "a") & (table["strategy"] == "nig_top")
                & (table["comparison"] == "random")].iloc[0]
    ref = study.per_query(unpruned["a"])
    rnd = next(r for r in pruned if r["dataset"] == "a" and r["strategy"] == "random")
    null = [study.per_query(s) for s in rnd["sets"]]
    top = study.per_query(next(r for r in pruned if r["dataset"] == "a" and r["strategy"] == "nig_top"
                               and r["scheme"] == "a"))
    assert row["delta"] == pytest.approx((top - pd.concat(null, axis=1).mean(axis=1)).mean())
    d_null = np.array([(v - ref).mean() for v in null])
    assert row["null_sets"] == 9 and row["null_delta_sd"] == pytest.approx(d_null.std(ddof=1))
    assert row["rank_p"] == pytest.approx(1 / 10)  # below every one of the 9 random sets: (1 + 0) / (9 + 1)
    assert row["prediction_p"] < 1e-6
    # with 6 primary tests and 9 random sets the rank p cannot reach 0.05 after Holm: the prediction p is used
    assert row["set_test"] == "prediction" and row["set_p_holm"] == pytest.approx(row["prediction_p_holm"])
    # a set inside the random cloud ranks in the middle
    mid = table[(table["dataset"] == "a") & (table["strategy"] == "nig_least") & (table["comparison"] == "random")]
    assert 0.2 < mid["rank_p"].item() < 0.9


def test_nan_p_counts_as_one_in_holm():
    unpruned, pruned = two_dataset_study()
    for r in pruned:  # contrast_top identical to the random mean on every query: t-test p is NaN
        if r["strategy"] == "contrast_top" and r["dataset"] == "a":
            rnd = next(x for x in pruned if x["dataset"] == "a" and x["strategy"] == "random")
            mean = pd.concat([study.per_query(s) for s in rnd["sets"]], axis=1).mean(axis=1)
            entry = {"per_query": {q: {"ndcg@10": float(v)} for q, v in mean.items()}, "mean": {}}
            r.update(entry)
            r["sets"] = [entry]
    table = study.comparisons(unpruned, pruned)
    prim = table[table["family"] == "primary"]
    assert prim["t_p"].isna().sum() == 1
    np.testing.assert_allclose(prim["t_p_holm"], statistics.holm(prim["t_p"].fillna(1.0).to_numpy()))
    assert prim["t_p_holm"].notna().all()


def test_verdicts_follow_the_numbers():
    assert study.verdict(-0.1, 0.001, 0.01) == "supported"
    assert study.verdict(-0.1, 0.001, 0.2) == "inconclusive"
    assert study.verdict(-0.1, 0.3, 0.2) == "not supported"
    assert study.verdict(+0.1, 0.001, 0.001) == "not supported"  # wrong sign
    assert study.verdict(float("nan"), 0.001, 0.001) == "not supported"


def ood_study(effect):
    """OOD set hurting the ood dataset by ``effect`` more than the in-domain one; controls hurt both equally."""
    rng = np.random.default_rng(3)
    roles = {"ind": "in_domain", "out": "ood"}
    unpruned = {d: record(d, rng.uniform(0.3, 0.7, 30)) for d in roles}
    pruned = []
    for d in roles:
        base = np.array([v["ndcg@10"] for v in unpruned[d]["per_query"].values()])
        shift = -0.02 + (effect if d == "out" else 0.0)
        pruned += [record(d, base + shift + rng.normal(0, 0.02, 30), "nig_top", scheme="ood", count=5),
                   record(d, [base - 0.02 + rng.normal(0, 0.02, 30) for _ in range(6)], "random", scheme="ood", count=5),
                   record(d, [base - 0.02 + rng.normal(0, 0.02, 30) for _ in range(6)], "random_layer_matched",
                          scheme="ood", count=5)]
    return unpruned, pruned, roles


def test_ood_contrast_bootstrap_and_controls():
    unpruned, pruned, roles = ood_study(-0.1)
    table = study.ood_contrast(unpruned, pruned, roles, n_boot=500)
    top = table[table["strategy"] == "nig_top"].iloc[0]
    assert top["D"] == pytest.approx(-0.1, abs=0.02) and top["D_hi"] < 0
    for _, r in table[table["strategy"] != "nig_top"].iterrows():
        assert abs(r["D"]) < 0.03 and r["excess_hi"] < 0 and r["rank_p"] == pytest.approx(1 / 7)
    claims = study.claims_table(pd.DataFrame(columns=["target", "fraction", "family"]), pd.DataFrame(), table,
                                fraction=0.01)
    assert claims.loc[claims["claim"] == "ood", "verdict"].item() == "supported"
    null_table = study.ood_contrast(*ood_study(0.0), n_boot=500)
    null_claims = study.claims_table(pd.DataFrame(columns=["target", "fraction", "family"]), pd.DataFrame(),
                                     null_table, fraction=0.01)
    assert null_claims.loc[null_claims["claim"] == "ood", "verdict"].item() != "supported"


def test_claims_table_rows_and_verdicts():
    unpruned, pruned = two_dataset_study()
    table = study.comparisons(unpruned, pruned)
    stab = pd.DataFrame([
        {"scheme": d, "unit_type": "ffn", "class": cls, "fraction": 0.01, "k": 92, "splits": 10,
         "permutations": 50, "queries_per_half": 10, "jaccard": j, "null_mean": nm, "null_p95": nm + 0.05,
         "chance": 0.005, "p_perm": p, "spearman": 0.5}
        for d in ("a", "b") for cls, j, nm, p in (("relevant", 0.6, 0.6, 0.5), ("contrast", 0.5, 0.1, 1 / 51))])
    claims = study.claims_table(table, stab, pd.DataFrame(), fraction=0.01)
    got = {(r.claim, r.collection): r.verdict for r in claims.itertuples()}
    assert got[("exist", "a")] == got[("exist", "b")] == "supported"  # -0.2 vs random ≈ 0
    assert got[("shared", "a")] == "supported"
    assert got[("stable", "a")] == "not supported"  # 0.6 vs permuted 0.6
    # contrast set: stable beyond the null, but pruned it does not hurt more than random
    assert got[("specific", "a")] == "inconclusive"
    md = study.claims_markdown(claims)
    assert "relevance neurons exist" in md and md.count("| exist |") == 2


def test_summary_reports_each_strategy():
    unpruned, pruned = two_dataset_study()
    table = study.comparisons(unpruned, pruned)
    summ = study.summary(table, unpruned)
    row = summ[(summ["dataset"] == "a") & (summ["scheme"] == "a")].iloc[0]
    assert row["units"] == 10 and float(row["Δ nig_top"].split("*")[0].split(" ")[0]) == pytest.approx(-0.2, abs=0.01)
    deltas = table[(table["comparison"] == "unpruned") & (table["strategy"] == "random") & (table["dataset"] == "a")]
    assert row["Δ random"] == f"{deltas['delta'].mean():+.4f} ± {deltas['delta'].std(ddof=1):.4f} (n=9)"
    assert "rank p 0.100" in row["nig_top − random"]
    md = study.summary_markdown(table, unpruned)
    assert md.count("\n| a |") == 2 and "Holm" in md
