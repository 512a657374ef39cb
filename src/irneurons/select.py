"""Neuron selection: rankings, exact top-k, multi-dataset schemes (intersection, fusion), relevance/OOD sets.

A *score table* is indexed by (layer, unit) for one unit type (FFN neurons and heads are never pooled) with
one score column per dataset. Scores are the mean NIG of a class and part (signed) or its absolute value.
Top-k is exact: sort by score descending, ties broken by (layer, unit) ascending, take the first k.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def scores(table: pd.DataFrame, unit_type: str, cls: str = "relevant", part: str = "total", signed: bool = True) -> pd.Series:
    """Score per (layer, unit) of one dataset's long table: mean NIG (or |mean NIG| if not ``signed``)."""
    sel = table[(table["unit_type"] == unit_type) & (table["class"] == cls) & (table["part"] == part)]
    if sel.empty:
        raise ValueError(f"no rows for unit_type={unit_type!r}, class={cls!r}, part={part!r}")
    s = sel.set_index(["layer", "unit"])["mean"].sort_index()
    return s if signed else s.abs()


def k_for_fraction(n_units: int, fraction: float) -> int:
    """k = round(fraction · n_units), at least 1."""
    return max(1, int(round(fraction * n_units)))


def top_k(score: pd.Series, k: int) -> list[tuple[int, int]]:
    """The k (layer, unit) with the highest score; ties by (layer, unit) ascending. Exactly k (or all if fewer)."""
    df = score.rename("s").reset_index()
    df = df.sort_values(["s", "layer", "unit"], ascending=[False, True, True], kind="mergesort")
    return [tuple(map(int, x)) for x in df[["layer", "unit"]].head(k).to_numpy()]


def bottom_k(score: pd.Series, k: int) -> list[tuple[int, int]]:
    """The k lowest-scored units (ties by (layer, unit) ascending)."""
    return top_k(-score, k)


def fusion(score_by_dataset: dict[str, pd.Series]) -> pd.Series:
    """Mean score over datasets (units aligned on (layer, unit))."""
    return pd.concat(score_by_dataset, axis=1).mean(axis=1)


def intersection(score_by_dataset: dict[str, pd.Series], k: int) -> list[tuple[int, int]]:
    """Units in the top-k of every dataset (a subset of each member's top-k; may hold fewer than k)."""
    sets = [set(top_k(s, k)) for s in score_by_dataset.values()]
    return sorted(set.intersection(*sets))


def ood_units(score_by_dataset: dict[str, pd.Series], roles: dict[str, str], k: int) -> list[tuple[int, int]]:
    """OOD neurons: in the top-k of the OOD datasets' fusion but not in the top-k of the in-domain fusion."""
    ood = {d: s for d, s in score_by_dataset.items() if roles[d] == "ood"}
    ind = {d: s for d, s in score_by_dataset.items() if roles[d] == "in_domain"}
    if not ood or not ind:
        raise ValueError("OOD neurons need at least one in_domain and one ood dataset")
    return sorted(set(top_k(fusion(ood), k)) - set(top_k(fusion(ind), k)))


def jaccard(a, b) -> float:
    """|A ∩ B| / |A ∪ B| (1 for two empty sets)."""
    a, b = set(a), set(b)
    return 1.0 if not a | b else len(a & b) / len(a | b)


def chance_jaccard(n: int, k: int) -> float:
    """E[J] of two independent uniformly random k-subsets of n units.

    |A ∩ B| is hypergeometric(n, k, k); J = i / (2k − i), so E[J] = Σ_i P(i) · i / (2k − i).
    """
    i = np.arange(0, k + 1)
    p = stats.hypergeom(n, k, k).pmf(i)
    return float(np.sum(p * i / (2 * k - i)))


def random_units(all_units: list[tuple[int, int]], k: int, seed: int) -> list[tuple[int, int]]:
    """k units drawn uniformly without replacement with ``numpy.random.default_rng(seed)``, sorted."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(all_units), size=k, replace=False)
    return sorted(tuple(map(int, all_units[i])) for i in idx)
