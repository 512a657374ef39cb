"""Stability of the top sets under resampling of *queries*, against a label-permutation null.

Pairs of one query are not independent (they share the query's tokens), so the halves split the attribution
**queries**, never pairs: :func:`query_halves` assigns whole queries to half 0 or 1, stratified by which classes
a query has pairs of, so both classes appear in both halves. For a score class (``relevant``: mean total NIG
over relevant pairs; ``contrast``: mean over relevant − mean over non-relevant pairs, optionally the Welch
statistic) each half gives a score vector over units; the statistics are

- J = |top_k(half 0) ∩ top_k(half 1)| / |… ∪ …|, averaged over ``n_splits`` seeded re-splits,
- ρ = Spearman correlation of the two halves' full score vectors (same average),
- chance = E[J] of two uniformly random k-sets (:func:`irneurons.study.selection.chance_jaccard`),
- the label-permutation null: relevant / non-relevant labels shuffled *within each query* (the query mix
  and the halves stay fixed), the same pipeline rerun ``n_permutations`` times → null mean, 95th percentile
  and p = (1 + #{J_null ≥ J}) / (n_permutations + 1).

A top set that is stable but no more stable than under permuted labels is made of units that top *any* set
of pairs: stable, but not specific to relevance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sstats

from irneurons.attribution.shards import load_shard
from irneurons.study.selection import chance_jaccard, k_for_fraction

SHARD_KEYS = {"ffn": "ffn", "head": "heads"}


def load_pairs_matrix(shard_paths, pairs: pd.DataFrame, unit_type: str) -> dict:
    """Per-pair total conductance of one dataset: {"X": [N, units] float64 (layer-major), "label": [N],
    "qid": [N], "pair_id": [N], "n_layers", "n_units"} from its shards (total = sum over token parts)."""
    xs, labels, ids = [], [], []
    shape = None
    for path in shard_paths:
        arrays, meta = load_shard(path)
        if not arrays:
            continue
        v = arrays[SHARD_KEYS[unit_type]].sum(axis=1)  # [N, L, U]
        shape = v.shape[1:]
        xs.append(v.reshape(len(v), -1).astype(np.float64))
        labels.append(np.asarray(arrays["label"]))
        ids += list(meta["pair_ids"])
    if not xs:
        raise ValueError("no pairs in any shard")
    qid_of = dict(zip(pairs["pair_id"], pairs["qid"]))
    return {"X": np.concatenate(xs), "label": np.concatenate(labels).astype(int),
            "qid": np.array([str(qid_of[p]) for p in ids]), "pair_id": np.array(ids),
            "n_layers": int(shape[0]), "n_units": int(shape[1])}


def query_halves(qids, labels, seed) -> np.ndarray:
    """Half (0/1) of every pair, assigned per query: queries are grouped by the classes they have pairs of
    (both / only relevant / only non-relevant), sorted, permuted with ``numpy.random.default_rng(seed)``
    within each group and dealt alternately to halves 0 and 1. No query is in both halves."""
    qids, labels = np.asarray(qids), np.asarray(labels)
    classes = {}
    for q, y in zip(qids, labels):
        classes.setdefault(q, set()).add(int(y))
    strata = {}
    for q, c in classes.items():
        strata.setdefault(tuple(sorted(c)), []).append(q)
    rng = np.random.default_rng(seed)
    half_of, turn = {}, 0
    for key in sorted(strata):
        qs = sorted(strata[key])
        for i in rng.permutation(len(qs)):
            half_of[qs[i]] = turn % 2
            turn += 1
    return np.array([half_of[q] for q in qids])


def permute_within_queries(qids, labels, rng) -> np.ndarray:
    """The labels shuffled among the pairs of each query (each query keeps its numbers of each class)."""
    qids, out = np.asarray(qids), np.array(labels, copy=True)
    for q in np.unique(qids):
        idx = np.flatnonzero(qids == q)
        out[idx] = out[rng.permutation(idx)]
    return out


def class_score(X: np.ndarray, labels: np.ndarray, mask: np.ndarray, cls: str, standardise: bool = False):
    """Score vector of the pairs in ``mask``: mean over the class's pairs (relevant / non_relevant / all), or
    the contrast mean_rel − mean_nonrel (Welch statistic with ``standardise``)."""
    rel, non = mask & (labels == 1), mask & (labels == 0)
    if (cls in ("relevant", "contrast") and not rel.any()) or (cls in ("non_relevant", "contrast") and not non.any()):
        return np.full(X.shape[1], np.nan)  # this half has no pair of the class: the split is skipped
    if cls == "relevant":
        return X[rel].mean(axis=0)
    if cls == "non_relevant":
        return X[non].mean(axis=0)
    if cls == "all":
        return X[mask].mean(axis=0)
    if cls != "contrast":
        raise ValueError(f"unknown score class {cls!r}")
    diff = X[rel].mean(axis=0) - X[non].mean(axis=0)
    if not standardise:
        return diff
    se = np.sqrt(X[rel].var(axis=0, ddof=1) / rel.sum() + X[non].var(axis=0, ddof=1) / non.sum())
    return np.where(se > 0, diff / np.where(se > 0, se, 1.0), 0.0)


def _zscore(v):
    sd = v.std()
    return (v - v.mean()) / (sd if sd > 0 else 1.0)


def _top(v, k):
    return set(np.argsort(-v, kind="stable")[:k].tolist())  # ties → lower (layer, unit) first


def _split_stats(members, halves, labels_by_member, cls, k, standardise, with_spearman=True):
    """Mean over splits of (Jaccard, Spearman) of the two halves' fused scores."""
    js, rs = [], []
    for split in range(len(next(iter(halves.values())))):
        fused = [0.0, 0.0]
        for d, data in members.items():
            h = halves[d][split]
            for side in (0, 1):
                fused[side] = fused[side] + _zscore(class_score(data["X"], labels_by_member[d], h == side, cls,
                                                                 standardise))
        if np.isnan(fused[0]).any() or np.isnan(fused[1]).any():
            continue
        a, b = _top(fused[0], k), _top(fused[1], k)
        js.append(len(a & b) / len(a | b))
        if with_spearman:
            rs.append(sstats.spearmanr(fused[0], fused[1]).statistic)
    if not js:
        return np.nan, np.nan, np.nan
    return float(np.mean(js)), float(np.std(js)), (float(np.mean(rs)) if rs else np.nan)


def stability(members: dict, cls: str, fraction: float, *, n_splits: int = 10, n_permutations: int = 50,
              seed: int = 0, standardise: bool = False) -> dict:
    """Query-level split-half stability of one scheme's top-k set (``members``: {dataset: matrix from
    :func:`load_pairs_matrix`}, fused by z-score when several), with chance and the permutation null."""
    n = next(iter(members.values()))["X"].shape[1]
    k = k_for_fraction(n, fraction)
    halves = {d: [query_halves(m["qid"], m["label"], (seed, s)) for s in range(n_splits)] for d, m in members.items()}
    labels = {d: m["label"] for d, m in members.items()}
    j, j_sd, rho = _split_stats(members, halves, labels, cls, k, standardise)
    rng = np.random.default_rng((seed, 7))
    null_j = []
    for _ in range(n_permutations):
        perm = {d: permute_within_queries(m["qid"], m["label"], rng) for d, m in members.items()}
        pj, _, _ = _split_stats(members, halves, perm, cls, k, standardise, with_spearman=False)
        null_j.append(pj)
    null_j = np.array([x for x in null_j if not np.isnan(x)])
    per_half = [(h == side) for d in members for h in halves[d] for side in (0, 1)]
    q_half = min(len(set(members[d]["qid"][h == side])) for d in members for h in halves[d] for side in (0, 1))
    return {
        "n_units": n, "k": k, "splits": n_splits, "permutations": n_permutations,
        "queries_per_half": q_half, "pairs_per_half": int(min(m.sum() for m in per_half)),
        "jaccard": j, "jaccard_sd": j_sd, "chance": chance_jaccard(n, k),
        "null_mean": float(null_j.mean()) if len(null_j) else np.nan,
        "null_p95": float(np.quantile(null_j, 0.95)) if len(null_j) else np.nan,
        "p_perm": float((1 + np.sum(null_j >= j)) / (len(null_j) + 1)) if not np.isnan(j) else np.nan,
        "spearman": rho,
    }


def stability_table(matrices: dict, fractions: dict, classes=("relevant", "contrast"), *, n_splits: int = 10,
                    n_permutations: int = 50, seed: int = 0, standardise: bool = False) -> pd.DataFrame:
    """:func:`stability` for every dataset and (with ≥ 2 datasets) their fusion ``fusion-all``, per unit type,
    class and fraction. ``matrices``: {unit_type: {dataset: matrix}}; ``fractions``: {unit_type: [fractions]}."""
    rows = []
    for unit_type, fracs in fractions.items():
        by_ds = matrices[unit_type]
        schemes = {d: [d] for d in sorted(by_ds)} | ({"fusion-all": sorted(by_ds)} if len(by_ds) > 1 else {})
        for scheme, names in schemes.items():
            for cls in classes:
                for f in fracs:
                    res = stability({d: by_ds[d] for d in names}, cls, f, n_splits=n_splits,
                                    n_permutations=n_permutations, seed=seed, standardise=standardise)
                    rows.append({"scheme": scheme, "unit_type": unit_type, "class": cls, "fraction": f, **res})
    return pd.DataFrame(rows)
