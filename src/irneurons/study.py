"""The pruning study's statistics: every strategy vs the unpruned model, ``nig_top`` vs ``random`` (per seed
and pooled), Holm-corrected; one tidy table and a markdown summary.

A *record* is what a pruning job writes: dataset, target (ffn, ffn-<part>, head), scheme, strategy, fraction,
count (units removed), mean and per-query metrics. Tests are paired over the test queries of a dataset:
t-test and Wilcoxon signed-rank on per-query nDCG@10 (:func:`irneurons.evaluate.paired_tests`). The Holm
family is every test on one dataset (all targets, schemes, strategies, fractions and comparisons).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .evaluate import holm, paired_tests, to_markdown

MEASURE = "ndcg@10"
KEY = ["dataset", "target", "scheme", "fraction"]


def per_query(record: dict, measure: str = MEASURE) -> pd.Series:
    """Per-query values of ``measure`` of a record, indexed by qid."""
    return pd.Series({q: m[measure] for q, m in record["per_query"].items()}, name=measure).sort_index()


def comparisons(unpruned: dict[str, dict], pruned: list[dict], measure: str = MEASURE) -> pd.DataFrame:
    """Tidy table, one row per test: (dataset, target, scheme, strategy, fraction, count, comparison,
    mean_a, mean_b, delta = mean(a − b), t_p, wilcoxon_p, n, t_p_holm, wilcoxon_p_holm).

    comparison ``unpruned``: a = strategy, b = unpruned model. ``random-i``: a = nig_top, b = random seed i
    (same dataset, target, scheme, fraction, hence the same count). ``random (pooled)``: b = the per-query mean
    over all random seeds.
    """
    rows = []
    by_key: dict[tuple, dict[str, dict]] = {}
    for rec in pruned:
        by_key.setdefault(tuple(rec[k] for k in KEY), {})[rec["strategy"]] = rec
    for key, strategies in sorted(by_key.items(), key=lambda kv: tuple(map(str, kv[0]))):
        base = dict(zip(KEY, key))
        ref = per_query(unpruned[base["dataset"]], measure)
        for name, rec in sorted(strategies.items()):
            rows.append({**base, "strategy": name, "count": rec["count"], "comparison": "unpruned",
                         **paired_tests(per_query(rec, measure), ref)})
        randoms = {n: per_query(r, measure) for n, r in sorted(strategies.items()) if n.startswith("random-")}
        if "nig_top" in strategies and randoms:
            top = per_query(strategies["nig_top"], measure)
            for name, values in randoms.items():
                rows.append({**base, "strategy": "nig_top", "count": strategies["nig_top"]["count"],
                             "comparison": name, **paired_tests(top, values)})
            pooled = pd.concat(randoms, axis=1).mean(axis=1)
            rows.append({**base, "strategy": "nig_top", "count": strategies["nig_top"]["count"],
                         "comparison": "random (pooled)", **paired_tests(top, pooled)})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    for col in ("t_p", "wilcoxon_p"):
        table[f"{col}_holm"] = table.groupby("dataset")[col].transform(lambda p: pd.Series(holm(p.to_numpy()), p.index))
    return table


def _fmt_delta(delta: float, p: float) -> str:
    stars = "" if p is None or math.isnan(p) else ("***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "")
    p_txt = "–" if p is None or math.isnan(p) else (f"{p:.3f}" if p >= 0.001 else "<0.001")
    return f"{delta:+.4f}{stars} (p {p_txt})"


def summary(table: pd.DataFrame, unpruned: dict[str, dict], measure: str = MEASURE) -> pd.DataFrame:
    """One row per (dataset, target, scheme, fraction): unpruned value and Δ of each strategy vs unpruned
    (Holm t-test p), random as mean ± sd over seeds, and nig_top vs pooled random."""
    vs = table[table["comparison"] == "unpruned"]
    rows = []
    for key, g in vs.groupby(KEY, sort=True):
        base = dict(zip(KEY, key))
        row = {**base, "units": int(g["count"].iloc[0]),
               f"unpruned {measure}": unpruned[base["dataset"]]["mean"][measure]}
        for strategy in ("nig_top", "nig_bottom", "magnitude"):
            hit = g[g["strategy"] == strategy]
            row[f"Δ {strategy}"] = _fmt_delta(hit["delta"].item(), hit["t_p_holm"].item()) if len(hit) else ""
        rnd = g[g["strategy"].str.startswith("random-")]
        row["Δ random (mean ± sd)"] = (f"{rnd['delta'].mean():+.4f} ± {rnd['delta'].std(ddof=1) if len(rnd) > 1 else 0:.4f} "
                                       f"(n={len(rnd)})" if len(rnd) else "")
        pooled = table[(table["comparison"] == "random (pooled)")
                       & np.logical_and.reduce([table[k] == v for k, v in base.items()])]
        row["nig_top − random"] = _fmt_delta(pooled["delta"].item(), pooled["t_p_holm"].item()) if len(pooled) else ""
        rows.append(row)
    return pd.DataFrame(rows)


def summary_markdown(table: pd.DataFrame, unpruned: dict[str, dict], measure: str = MEASURE) -> str:
    """The summary as a markdown table with a legend."""
    legend = (f"Δ{measure} of each pruning strategy vs the unpruned model on the test queries (paired t-test, "
              "Holm-corrected per dataset; * p<0.05, ** p<0.01, *** p<0.001). Random: mean ± sd over seeds. "
              "nig_top − random: nig_top vs the per-query mean over random seeds.")
    return legend + "\n\n" + to_markdown(summary(table, unpruned, measure)) + "\n"
