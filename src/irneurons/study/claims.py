"""The pruning study's statistics: a declared confirmatory family, exploratory comparisons, the OOD contrast
and the claims table.

A *record* is what a pruning job writes: dataset, target (ffn, ffn-<part>, head), scheme, strategy, fraction,
count (units removed per set) and ``sets``: one entry per unit set evaluated (one for nig_top & co., R for the
random strategies), each with mean and per-query metrics. Δ of a set = per-query (pruned − unpruned) on the
dataset's test queries.

Tests of a selected set S against its null sets (``random``: uniform, same count; ``random_layer_matched``:
uniform within layers, the NIG set's per-layer counts), two views, both reported:

- **per query**: paired t-test (two-sided) and Wilcoxon of S vs the per-query mean over the R null sets;
- **per set**: the empirical rank of Δ_S among the R null Δs, p_rank = (1 + #{Δ_null ≤ Δ_S}) / (R + 1)
  (one-sided: S hurts more), and, since p_rank cannot go below 1/(R + 1), its parametric counterpart for
  small R: the one-sided prediction-interval p of Δ_S under a normal null fitted to the R null Δs,
  t = (Δ_S − mean) / (sd · sqrt(1 + 1/R)), p = F_t(t; R − 1).

The confirmatory family (:data:`PRIMARY`) is exactly the S-vs-``random`` tests of the sets that carry a claim:
``nig_top`` of each dataset's own set (``<d>``), ``nig_top`` of its leave-one-collection-out set
(``loo-<d>``) and ``contrast_top`` of its own set; Holm runs over that family alone (NaN p counts as 1), per
view. Every other row is exploratory and reported unadjusted. The per-set view uses p_rank when R is large
enough for it to reach α after Holm (R + 1 ≥ m / α), the prediction p otherwise; the table says which.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from irneurons.study.statistics import holm, paired_tests
from irneurons.retrieval.evaluation import to_markdown

MEASURE = "ndcg@10"
ALPHA = 0.05
KEY = ["dataset", "target", "scheme", "fraction"]
NULLS = ("random", "random_layer_matched")


def per_query(record: dict, measure: str = MEASURE) -> pd.Series:
    """Per-query values of ``measure`` of a record (or of one of its sets), indexed by qid."""
    return pd.Series({q: m[measure] for q, m in record["per_query"].items()}, name=measure).sort_index()


def set_values(record: dict, measure: str = MEASURE) -> list[pd.Series]:
    """Per-query values of every set of a record (a record without ``sets`` is one set)."""
    return [per_query(s, measure) for s in record.get("sets", [record])]


def is_primary(dataset: str, scheme: str, strategy: str, comparison: str) -> bool:
    """Whether a test belongs to the confirmatory family (see the module docstring)."""
    if comparison != "random":
        return False
    return (strategy == "nig_top" and scheme in (dataset, f"loo-{dataset}")) or (
        strategy == "contrast_top" and scheme == dataset)


def claim_of(dataset: str, scheme: str, strategy: str) -> str:
    """The claim a primary test carries."""
    if strategy == "contrast_top":
        return "specific"
    return "shared" if scheme.startswith("loo-") else "exist"


def _prediction_p(delta: float, null: np.ndarray) -> float:
    if len(null) < 2 or np.std(null, ddof=1) == 0:
        return float("nan")
    t = (delta - null.mean()) / (null.std(ddof=1) * math.sqrt(1 + 1 / len(null)))
    return float(stats.t.cdf(t, len(null) - 1))


def null_test(values: pd.Series, null_sets: list[pd.Series], ref: pd.Series) -> dict:
    """Both views of one selected set (per-query ``values``) against ``null_sets`` (see module docstring)."""
    pooled = pd.concat(null_sets, axis=1).mean(axis=1)
    out = paired_tests(values, pooled)
    d_set = float((values - ref).mean())
    d_null = np.array([float((v - ref).mean()) for v in null_sets])
    out.update(
        delta_set=d_set, null_sets=len(d_null), null_delta_mean=float(d_null.mean()),
        null_delta_sd=float(d_null.std(ddof=1)) if len(d_null) > 1 else float("nan"),
        rank_p=float((1 + np.sum(d_null <= d_set)) / (len(d_null) + 1)), prediction_p=_prediction_p(d_set, d_null),
    )
    return out


def comparisons(unpruned: dict[str, dict], pruned: list[dict], measure: str = MEASURE, alpha: float = ALPHA) -> pd.DataFrame:
    """Tidy table, one row per test.

    comparison ``unpruned``: a set vs the unpruned model (one row per set; ``set`` = its index).
    comparison ``random`` / ``random_layer_matched``: a single-set strategy vs the null sets of the same
    dataset, target and fraction — the same scheme's, else (``random`` only) any scheme's with the same count
    (uniform random sets depend only on the count) — with :func:`null_test`'s columns. ``random_layer_matched``
    is matched to the scheme's nig_top set, so only nig_top is tested against it. Columns ``family``
    (primary / exploratory), ``claim`` and the Holm-adjusted ``t_p_holm``, ``rank_p_holm``,
    ``prediction_p_holm``, ``set_p_holm`` (the per-set view used: ``set_test``) on the primary family.
    """
    rows = []
    records: dict[tuple, dict[str, dict]] = {}
    for rec in pruned:
        records.setdefault(tuple(rec[k] for k in KEY), {})[rec["strategy"]] = rec
    # uniform random sets depend only on the count: index them once for schemes that have none of their own
    random_by_count: dict[tuple, dict] = {}
    for key, strategies in sorted(records.items(), key=lambda kv: tuple(map(str, kv[0]))):
        if "random" in strategies:
            d, t, _, f = key
            random_by_count.setdefault((d, t, f, strategies["random"]["count"]), strategies["random"])
    for key, strategies in sorted(records.items(), key=lambda kv: tuple(map(str, kv[0]))):
        base = dict(zip(KEY, key))
        ref = per_query(unpruned[base["dataset"]], measure)
        for name, rec in sorted(strategies.items()):
            for i, values in enumerate(set_values(rec, measure)):
                rows.append({**base, "strategy": name, "set": i, "count": rec["count"], "comparison": "unpruned",
                             **paired_tests(values, ref)})
        for name, rec in sorted(strategies.items()):
            if name in NULLS:
                continue
            for null in NULLS:
                if null == "random_layer_matched" and name != "nig_top":
                    continue
                comparator = strategies.get(null)
                if comparator is None and null == "random":
                    comparator = random_by_count.get((base["dataset"], base["target"], base["fraction"], rec["count"]))
                if comparator is None or comparator["count"] != rec["count"]:
                    continue
                test = null_test(per_query(rec, measure), set_values(comparator, measure), ref)
                rows.append({**base, "strategy": name, "set": 0, "count": rec["count"], "comparison": null,
                             "null_scheme": comparator["scheme"], **test})
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["family"] = [
        "primary" if is_primary(r.dataset, r.scheme, r.strategy, r.comparison) else "exploratory"
        for r in table.itertuples()
    ]
    table["claim"] = [claim_of(r.dataset, r.scheme, r.strategy) if r.family == "primary" else ""
                      for r in table.itertuples()]
    prim = table["family"] == "primary"
    m = int(prim.sum())
    for col in ("t_p", "rank_p", "prediction_p"):
        if col not in table:
            table[col] = np.nan
        table[f"{col}_holm"] = np.nan
        if m:
            table.loc[prim, f"{col}_holm"] = holm(table.loc[prim, col].fillna(1.0).to_numpy())
    table["set_test"] = ""
    table["set_p_holm"] = np.nan
    if m:
        enough = (table.loc[prim, "null_sets"] + 1) >= m / alpha
        table.loc[prim, "set_test"] = np.where(enough, "rank", "prediction")
        table.loc[prim, "set_p_holm"] = np.where(enough, table.loc[prim, "rank_p_holm"],
                                                 table.loc[prim, "prediction_p_holm"])
    return table


def verdict(delta: float, p_query: float, p_set: float, alpha: float = ALPHA) -> str:
    """``supported``: the effect has the claimed sign (Δ < 0: S hurts more than its null) and both views are
    significant after Holm; ``not supported``: wrong sign, or neither view significant; ``inconclusive``: the
    views disagree."""
    if delta is None or math.isnan(delta) or delta >= 0:
        return "not supported"
    sig = [p is not None and not math.isnan(p) and p < alpha for p in (p_query, p_set)]
    return "supported" if all(sig) else "inconclusive" if any(sig) else "not supported"


def _fmt_delta(delta: float, p: float) -> str:
    if delta is None or (isinstance(delta, float) and math.isnan(delta)):
        return ""
    stars = "" if p is None or math.isnan(p) else ("***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "")
    p_txt = "–" if p is None or math.isnan(p) else (f"{p:.3f}" if p >= 0.001 else "<0.001")
    return f"{delta:+.4f}{stars} (p {p_txt})"


def _mean_sd(g: pd.DataFrame) -> str:
    if g.empty:
        return ""
    sd = g["delta"].std(ddof=1) if len(g) > 1 else 0.0
    return f"{g['delta'].mean():+.4f} ± {sd:.4f} (n={len(g)})"


def summary(table: pd.DataFrame, unpruned: dict[str, dict], measure: str = MEASURE) -> pd.DataFrame:
    """One row per (dataset, target, scheme, fraction): units, unpruned value, Δ of each single-set strategy
    vs unpruned (unadjusted t-test p), the null sets' Δ as mean ± sd, and nig_top vs random (Holm p when
    primary, else unadjusted, with the per-set rank p)."""
    vs = table[table["comparison"] == "unpruned"]
    rows = []
    for key, g in vs.groupby(KEY, sort=True):
        base = dict(zip(KEY, key))
        row = {**base, "units": int(g["count"].iloc[0]), f"unpruned {measure}": unpruned[base["dataset"]]["mean"][measure]}
        for strategy in ("nig_top", "contrast_top", "nig_negative", "nig_least", "magnitude"):
            hit = g[g["strategy"] == strategy]
            row[f"Δ {strategy}"] = _fmt_delta(hit["delta"].item(), hit["t_p"].item()) if len(hit) else ""
        for null in NULLS:
            row[f"Δ {null}"] = _mean_sd(g[g["strategy"] == null])
        sel = np.logical_and.reduce([table[k] == v for k, v in base.items()])
        for null in NULLS:
            hit = table[sel & (table["comparison"] == null) & (table["strategy"] == "nig_top")]
            if len(hit):
                r = hit.iloc[0]
                p = r["t_p_holm"] if r["family"] == "primary" else r["t_p"]
                row[f"nig_top − {null}"] = f"{_fmt_delta(r['delta'], p)}, rank p {r['rank_p']:.3f}"
            else:
                row[f"nig_top − {null}"] = ""
        rows.append(row)
    out = pd.DataFrame(rows)
    return out.loc[:, [c for c in out.columns if not (out[c] == "").all()]] if len(out) else out


def summary_markdown(table: pd.DataFrame, unpruned: dict[str, dict], measure: str = MEASURE) -> str:
    """The summary as a markdown table with a legend."""
    legend = (f"Δ{measure} of each pruning strategy vs the unpruned model on the test queries (paired t-test, "
              "unadjusted; * p<0.05, ** p<0.01, *** p<0.001). Null sets: mean ± sd of Δ over the sets. "
              "nig_top − null: nig_top vs the per-query mean over the null sets (Holm over the primary family "
              "when the row is primary, else unadjusted) and the empirical rank p among the null sets.")
    return legend + "\n\n" + to_markdown(summary(table, unpruned, measure)) + "\n"


# --------------------------------------------------------------------------- OOD neurons


def _delta_matrix(record: dict, ref: pd.Series, measure: str) -> np.ndarray:
    """[sets, queries] per-query Δ of every set of a record (queries in ref's order)."""
    return np.stack([(v.reindex(ref.index) - ref).to_numpy() for v in set_values(record, measure)])


def ood_contrast(unpruned: dict[str, dict], pruned: list[dict], roles: dict[str, str], *, n_boot: int = 2000,
                 seed: int = 0, measure: str = MEASURE) -> pd.DataFrame:
    """Does the OOD set hurt the OOD collections more than the in-domain ones, beyond its null controls?

    For each set of scheme ``ood`` (nig_top, random, random_layer_matched): D = Δ_ood − Δ_in, with Δ_g the mean
    over group g's datasets of the mean per-query Δ. The collections have different queries, so the
    bootstrap resamples each dataset's queries independently (``n_boot`` draws, seeded); the same draws serve
    every set. Rows: one per (target, fraction, strategy) with D (mean over the strategy's sets), its 95 % CI,
    and for the null strategies the excess E = D_nig_top − D_null with its CI and the rank of D_nig_top among
    the null sets' D.
    """
    recs = [r for r in pruned if r["scheme"] == "ood"]
    groups = {"ood": [d for d, r in roles.items() if r == "ood"], "in": [d for d, r in roles.items() if r == "in_domain"]}
    rows = []
    rng = np.random.default_rng((seed, 11))
    for target, fraction in sorted({(r["target"], r["fraction"]) for r in recs}):
        sub = {(r["dataset"], r["strategy"]): r for r in recs if r["target"] == target and r["fraction"] == fraction}
        datasets = groups["ood"] + groups["in"]
        if not all((d, "nig_top") in sub for d in datasets):
            continue
        refs = {d: per_query(unpruned[d], measure) for d in datasets}
        draws = {d: rng.integers(0, len(refs[d]), size=(n_boot, len(refs[d]))) for d in datasets}

        def diff(strategy):
            """Point D per set [S] and bootstrap D per set [S, B]."""
            point, boot = 0.0, 0.0
            for g, sign in (("ood", 1.0), ("in", -1.0)):
                for d in groups[g]:
                    m = _delta_matrix(sub[(d, strategy)], refs[d], measure)  # [S, Q]
                    point = point + sign * m.mean(axis=1) / len(groups[g])
                    boot = boot + sign * m[:, draws[d]].mean(axis=2) / len(groups[g])
                    # m[:, draws] is [S, B, Q]
            return point, boot

        top_point, top_boot = diff("nig_top")
        rows.append({"target": target, "fraction": fraction, "strategy": "nig_top", "sets": 1,
                     "count": sub[(datasets[0], "nig_top")]["count"], "D": float(top_point[0]),
                     "D_lo": float(np.quantile(top_boot[0], 0.025)), "D_hi": float(np.quantile(top_boot[0], 0.975))})
        for null in NULLS:
            if not all((d, null) in sub for d in datasets):
                continue
            point, boot = diff(null)
            excess = top_boot[0] - boot.mean(axis=0)
            rows.append({"target": target, "fraction": fraction, "strategy": null, "sets": len(point),
                         "count": sub[(datasets[0], null)]["count"], "D": float(point.mean()),
                         "D_lo": float(np.quantile(boot.mean(axis=0), 0.025)),
                         "D_hi": float(np.quantile(boot.mean(axis=0), 0.975)),
                         "excess": float(top_point[0] - point.mean()), "excess_lo": float(np.quantile(excess, 0.025)),
                         "excess_hi": float(np.quantile(excess, 0.975)),
                         "rank_p": float((1 + np.sum(point <= top_point[0])) / (len(point) + 1))})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- claims


CLAIMS = {
    "exist": "relevance neurons exist: pruning a collection's own top set hurts it more than random sets",
    "shared": "relevance neurons are shared: the set selected on the other collections (leave-one-out) hurts "
              "the held-out collection more than random sets",
    "stable": "relevance neurons are stable: top sets of disjoint query halves overlap more than under "
              "permuted relevance labels",
    "specific": "relevance neurons are specific to relevance: the relevant − non-relevant contrast set is "
                "more stable than under permuted labels and, pruned, hurts more than random sets",
    "ood": "OOD neurons exist: the OOD set hurts the OOD collection more than the in-domain one, beyond its "
           "random and layer-matched random controls",
}


def _fmt_p(p) -> str:
    return "–" if p is None or (isinstance(p, float) and math.isnan(p)) else (f"{p:.3f}" if p >= 0.001 else "<0.001")


def claims_table(pruning: pd.DataFrame, stability: pd.DataFrame, ood: pd.DataFrame, *, fraction: float,
                 unit_type: str = "ffn", target: str = "ffn", alpha: float = ALPHA) -> pd.DataFrame:
    """One row per (claim, collection) with the test, effect size, CI or p, and a verdict computed from the
    numbers (:func:`verdict`; stability: permutation p Holm-adjusted over the collections; OOD: bootstrap CIs).

    ``pruning``: :func:`comparisons`; ``stability``: :func:`irneurons.study.stability.stability_table`;
    ``ood``: :func:`ood_contrast`. ``fraction`` / ``unit_type`` / ``target``: the grid point claims are made at.
    """
    rows = []
    prim = pruning[(pruning.get("family") == "primary") & (pruning["target"] == target)
                   & np.isclose(pruning["fraction"].astype(float), fraction)] if len(pruning) else pruning
    stab = stability[(stability["unit_type"] == unit_type) & np.isclose(stability["fraction"], fraction)] \
        if len(stability) else stability
    stab = stab[~stab["scheme"].str.startswith("fusion")] if len(stab) else stab
    stab_holm = {}
    for cls in ("relevant", "contrast"):
        s = stab[stab["class"] == cls] if len(stab) else stab
        if len(s):
            stab_holm.update({(cls, d): p for d, p in zip(s["scheme"], holm(s["p_perm"].fillna(1.0).to_numpy()))})

    def prune_row(claim, r):
        v = verdict(r["delta"], r["t_p_holm"], r["set_p_holm"], alpha)
        return {"claim": claim, "collection": r["dataset"],
                "test": f"{r['strategy']} ({r['scheme']}, {r['count']} units) vs {int(r['null_sets'])} random sets: "
                        f"paired t-test on per-query Δ vs the random mean; {r['set_test']} p over sets; Holm over "
                        f"the primary family",
                "effect": f"Δ{MEASURE} {r['delta_set']:+.4f} vs random {r['null_delta_mean']:+.4f} ± "
                          f"{r['null_delta_sd']:.4f} (difference {r['delta']:+.4f})",
                "p / CI": f"t p {_fmt_p(r['t_p_holm'])}, {r['set_test']} p {_fmt_p(r['set_p_holm'])} "
                          f"(rank p {_fmt_p(r['rank_p'])})",
                "verdict": v}

    for claim in ("exist", "shared"):
        for _, r in prim[prim["claim"] == claim].iterrows() if len(prim) else []:
            rows.append(prune_row(claim, r))
    for _, r in stab[stab["class"] == "relevant"].iterrows() if len(stab) else []:
        p = stab_holm[("relevant", r["scheme"])]
        v = "supported" if p < alpha and r["jaccard"] > r["null_mean"] else "not supported"
        rows.append({"claim": "stable", "collection": r["scheme"],
                     "test": f"query-level split halves ({r['splits']} splits, {r['queries_per_half']}+ queries per "
                             f"half), top {r['k']} {unit_type}; {r['permutations']} within-query label permutations; "
                             f"Holm over collections",
                     "effect": f"Jaccard {r['jaccard']:.3f} vs permuted {r['null_mean']:.3f} (95th pct "
                               f"{r['null_p95']:.3f}), chance {r['chance']:.3f}; Spearman {r['spearman']:.3f}",
                     "p / CI": f"permutation p {_fmt_p(p)}", "verdict": v})
    spec = {r["dataset"]: r for _, r in prim[prim["claim"] == "specific"].iterrows()} if len(prim) else {}
    for _, r in stab[stab["class"] == "contrast"].iterrows() if len(stab) else []:
        p = stab_holm[("contrast", r["scheme"])]
        stable_v = "supported" if p < alpha and r["jaccard"] > r["null_mean"] else "not supported"
        pr = spec.get(r["scheme"])
        prune_v = prune_row("specific", pr)["verdict"] if pr is not None else "not tested"
        v = "supported" if stable_v == prune_v == "supported" else (
            "not supported" if stable_v == "not supported" and prune_v in ("not supported", "not tested")
            else "inconclusive")
        effect = f"contrast Jaccard {r['jaccard']:.3f} vs permuted {r['null_mean']:.3f}"
        ptxt = f"permutation p {_fmt_p(p)}"
        if pr is not None:
            effect += f"; pruned Δ {pr['delta_set']:+.4f} vs random {pr['null_delta_mean']:+.4f}"
            ptxt += f"; pruning t p {_fmt_p(pr['t_p_holm'])}, {pr['set_test']} p {_fmt_p(pr['set_p_holm'])}"
        rows.append({"claim": "specific", "collection": r["scheme"],
                     "test": "contrast top set: query-half stability vs label permutations (Holm over collections) "
                             "and contrast_top pruned vs random sets (primary family)",
                     "effect": effect, "p / CI": ptxt, "verdict": v})
    o = ood[(ood["target"] == target) & np.isclose(ood["fraction"], fraction)] if len(ood) else ood
    if len(o) and (o["strategy"] == "nig_top").any():
        top = o[o["strategy"] == "nig_top"].iloc[0]
        nulls = o[o["strategy"] != "nig_top"]
        below = [top["D_hi"] < 0] + [r["excess_hi"] < 0 for _, r in nulls.iterrows()]
        above = top["D"] >= 0 or any(r["excess"] >= 0 for _, r in nulls.iterrows())
        v = "supported" if all(below) and len(nulls) else "not supported" if above else "inconclusive"
        effect = f"D = Δ_ood − Δ_in {top['D']:+.4f} [{top['D_lo']:+.4f}, {top['D_hi']:+.4f}]"
        ci = "; ".join(f"excess vs {r['strategy']} ({int(r['sets'])} sets) {r['excess']:+.4f} "
                       f"[{r['excess_lo']:+.4f}, {r['excess_hi']:+.4f}], rank p {_fmt_p(r['rank_p'])}"
                       for _, r in nulls.iterrows())
        rows.append({"claim": "ood", "collection": "ood vs in_domain",
                     "test": f"OOD set ({int(top['count'])} units) pruned on both groups; D against random and "
                             "layer-matched random sets of its size; 95 % bootstrap CIs over each collection's queries",
                     "effect": effect, "p / CI": ci or "no null controls", "verdict": v})
    return pd.DataFrame(rows, columns=["claim", "collection", "test", "effect", "p / CI", "verdict"])


def claims_markdown(claims: pd.DataFrame) -> str:
    """The claims table as markdown, with each claim's statement."""
    lines = ["Claims of the study, each with its test and a verdict computed from the numbers "
             f"(α = {ALPHA}; supported = right sign and significant in every view).", ""]
    lines += [f"- **{k}**: {v}" for k, v in CLAIMS.items()] + [""]
    return "\n".join(lines) + to_markdown(claims) + "\n"
