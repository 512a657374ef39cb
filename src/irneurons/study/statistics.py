"""Paired tests of per-query metrics and Holm's step-down correction."""

from __future__ import annotations


import numpy as np
import pandas as pd


def paired_tests(a: pd.Series, b: pd.Series) -> dict:
    """Paired t-test and Wilcoxon signed-rank of per-query values a vs b (aligned on qid).

    Returns mean_a, mean_b, delta = mean(a − b), t-test p, Wilcoxon p (NaN when all differences are 0), n.
    """
    from scipy import stats

    a, b = a.align(b, join="inner")
    diff = (a - b).to_numpy()
    out = {"mean_a": float(a.mean()), "mean_b": float(b.mean()), "delta": float(diff.mean()), "n": int(len(diff))}
    if len(diff) < 2 or np.allclose(diff, 0):
        out.update(t_p=float("nan"), wilcoxon_p=float("nan"))
        return out
    out["t_p"] = float(stats.ttest_rel(a, b).pvalue)
    out["wilcoxon_p"] = float(stats.wilcoxon(diff).pvalue)
    return out



def holm(pvalues) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values: p_(i) · (m − i + 1), made monotone, capped at 1 (NaN left as NaN)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    pv = p[ok]
    m = len(pv)
    if m == 0:
        return out
    order = np.argsort(pv)
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, pv[i] * (m - rank)))
        adj[i] = running
    out[ok] = adj
    return out
