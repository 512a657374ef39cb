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


# --------------------------------------------------------------------------- schemes and strategies

GROUPS = ("all", "in_domain", "ood")
STRATEGIES = ("nig_top", "nig_bottom", "magnitude", "random")


def parse_scheme(scheme: str, roles: dict[str, str]) -> tuple[str, list[str]]:
    """(kind, member datasets) of a scheme name.

    ``<dataset>`` → ("single", [dataset]); ``fusion-<group>`` / ``intersection-<group>`` → that kind over the
    group's datasets (group: all, in_domain, ood); ``ood`` → ("ood", all datasets): OOD neurons.
    """
    if scheme in roles:
        return "single", [scheme]
    if scheme == "ood":
        return "ood", sorted(roles)
    kind, _, group = scheme.partition("-")
    if kind in ("fusion", "intersection") and group in GROUPS:
        members = sorted(d for d, r in roles.items() if group == "all" or r == group)
        if not members:
            raise ValueError(f"scheme {scheme!r}: no dataset has role {group!r}")
        return kind, members
    raise ValueError(
        f"unknown scheme {scheme!r}: use a dataset name, fusion-<group>, intersection-<group> (group: "
        f"{', '.join(GROUPS)}) or ood"
    )


def parse_strategy(strategy: str) -> tuple[str, int | None]:
    """``nig_top`` / ``nig_bottom`` / ``magnitude`` → (name, None); ``random-<i>`` → ("random", i)."""
    if strategy in ("nig_top", "nig_bottom", "magnitude"):
        return strategy, None
    name, _, seed = strategy.partition("-")
    if name == "random" and seed.isdigit():
        return "random", int(seed)
    raise ValueError(f"unknown strategy {strategy!r}: nig_top, nig_bottom, magnitude or random-<seed index>")


def magnitude_scores(table: pd.DataFrame, unit_type: str) -> pd.Series:
    """Mean |activation| per (layer, unit) over all pairs and all real tokens (class ``all``, part ``total``)."""
    sel = table[(table["unit_type"] == unit_type) & (table["class"] == "all") & (table["part"] == "total")]
    if sel.empty or sel["absact_mean"].isna().all():
        raise ValueError(f"no activation magnitudes for unit_type={unit_type!r} (re-run the aggregate rule)")
    return sel.set_index(["layer", "unit"])["absact_mean"].sort_index()


def select_units(
    tables: dict[str, pd.DataFrame],
    roles: dict[str, str],
    scheme: str,
    strategy: str,
    unit_type: str,
    fraction: float,
    *,
    cls: str = "relevant",
    part: str = "total",
    signed: bool = True,
    seed: int = 0,
) -> dict:
    """The units a pruning strategy removes, with k and the scheme's members.

    n = number of units of ``unit_type``; k = round(fraction · n) (≥ 1). The scheme's *NIG set*:
    single / fusion → top-k of the (mean) score; intersection → units in every member's top-k (≤ k);
    ood → top-k of the OOD datasets' fusion minus the top-k of the in-domain fusion (≤ k).
    Every strategy removes c = |NIG set| units, so strategies are compared at the same count:
    ``nig_top`` → the NIG set; ``nig_bottom`` → the c lowest of the scheme's base score (fusion of its
    members; for ``ood``, of the OOD datasets); ``magnitude`` → the c highest mean |activation| (fusion of the
    same members); ``random-i`` → c units uniform without replacement, seed = ``seed`` + i.
    """
    kind, members = parse_scheme(scheme, roles)
    name, seed_index = parse_strategy(strategy)
    per_ds = {d: scores(tables[d], unit_type, cls, part, signed) for d in members}
    n_units = len(next(iter(per_ds.values())))
    k = k_for_fraction(n_units, fraction)
    if kind == "intersection":
        nig_set = intersection(per_ds, k)
    elif kind == "ood":
        nig_set = ood_units(per_ds, roles, k)
    else:
        nig_set = top_k(fusion(per_ds), k)
    base = [d for d in members if kind != "ood" or roles[d] == "ood"]
    count = len(nig_set)
    if name == "nig_top":
        units = sorted(nig_set)
    elif name == "nig_bottom":
        units = sorted(bottom_k(fusion({d: per_ds[d] for d in base}), count))
    elif name == "magnitude":
        units = sorted(top_k(fusion({d: magnitude_scores(tables[d], unit_type) for d in base}), count))
    else:
        all_units = list(next(iter(per_ds.values())).index)
        units = random_units(all_units, count, seed + seed_index) if count else []
    return {
        "scheme": scheme, "kind": kind, "members": members, "strategy": strategy, "unit_type": unit_type,
        "fraction": fraction, "n_units": n_units, "k": k, "count": len(units),
        "score": {"class": cls, "part": part, "signed": signed}, "units": [list(u) for u in units],
    }


def n_layers(table: pd.DataFrame, unit_type: str) -> int:
    """Number of layers of ``unit_type`` in a neurons long table (highest layer index + 1)."""
    return int(table.loc[table["unit_type"] == unit_type, "layer"].max()) + 1


def layer_counts(units, layers: int) -> list[int]:
    """Number of selected units per layer (layers 0..layers−1)."""
    counts = [0] * layers
    for layer, _ in units:
        counts[int(layer)] += 1
    return counts


def split_half_stability(halves: pd.DataFrame, unit_type: str, fraction: float, cls: str = "relevant",
                         signed: bool = True) -> dict:
    """Jaccard of the top-k sets selected on two disjoint halves of the pairs, and its chance level.

    ``halves``: rows (unit_type, layer, unit, class, half ∈ {0, 1}, mean) for part ``total``, possibly with a
    ``dataset`` column (then each half's score is the fusion over datasets). Chance = E[J] of two random
    k-subsets of the n units (:func:`chance_jaccard`).
    """
    sel = halves[(halves["unit_type"] == unit_type) & (halves["class"] == cls)]
    if sel.empty:
        raise ValueError(f"no split-half rows for unit_type={unit_type!r}, class={cls!r}")
    sets, pairs = [], []
    for half in (0, 1):
        h = sel[sel["half"] == half]
        if "n" in h:
            pairs.append(int(h.groupby("dataset")["n"].first().sum()) if "dataset" in h else int(h["n"].iloc[0]))
        by_ds = {d: g.set_index(["layer", "unit"])["mean"].sort_index() for d, g in h.groupby("dataset")} \
            if "dataset" in h else {"_": h.set_index(["layer", "unit"])["mean"].sort_index()}
        s = fusion(by_ds)
        s = s if signed else s.abs()
        n = len(s)
        k = k_for_fraction(n, fraction)
        sets.append(top_k(s, k))
    out = {"n_units": n, "k": k, "jaccard": jaccard(*sets), "chance": chance_jaccard(n, k)}
    if pairs:
        out["pairs_per_half"] = min(pairs)
    return out


def write_selection(path, table_paths: dict, roles: dict, scheme: str, strategy: str, unit_type: str,
                    fraction: float, *, score: dict, seed: int, provenance: dict | None = None) -> dict:
    """Read the members' neuron tables, :func:`select_units`, write the set (with per-layer counts) as JSON."""
    import json

    columns = ["unit_type", "layer", "unit", "part", "class", "mean", "absact_mean"]
    tables = {d: pd.read_parquet(p, columns=columns) for d, p in table_paths.items()}
    sel = select_units(tables, roles, scheme, strategy, unit_type, fraction, cls=score.get("class", "relevant"),
                       part=score.get("part", "total"), signed=score.get("signed", True), seed=seed)
    sel["per_layer"] = layer_counts(sel["units"], n_layers(next(iter(tables.values())), unit_type))
    sel["provenance"] = provenance or {}
    with open(path, "w") as fh:
        json.dump(sel, fh, indent=1)
    return sel


def stability_table(halves: pd.DataFrame, roles: dict, fractions: dict, score: dict) -> pd.DataFrame:
    """Split-half Jaccard vs chance for every dataset and the fusion of all datasets, per unit type and fraction.

    ``fractions``: {unit_type: [fractions]}. Uses part ``total`` (the halves hold only that) and the score's
    class and sign.
    """
    rows = []
    schemes = {d: [d] for d in sorted(roles)} | ({"fusion-all": sorted(roles)} if len(roles) > 1 else {})
    for scheme, members in schemes.items():
        sub = halves[halves["dataset"].isin(members)]
        for unit_type, fracs in fractions.items():
            for f in fracs:
                res = split_half_stability(sub, unit_type, f, score.get("class", "relevant"), score.get("signed", True))
                rows.append({"scheme": scheme, "unit_type": unit_type, "fraction": f, **res})
    return pd.DataFrame(rows)


def ood_table(tables: dict, roles: dict, fractions: dict, score: dict) -> pd.DataFrame:
    """Size of the OOD-neuron set (top-k of the OOD fusion minus top-k of the in-domain fusion) and its
    per-layer counts, per unit type and fraction. Empty when there is no in-domain/OOD pair of groups."""
    if not ({"in_domain", "ood"} <= set(roles.values())):
        return pd.DataFrame(columns=["unit_type", "fraction", "k", "ood_units"])
    rows = []
    for unit_type, fracs in fractions.items():
        for f in fracs:
            sel = select_units(tables, roles, "ood", "nig_top", unit_type, f, cls=score.get("class", "relevant"),
                               part=score.get("part", "total"), signed=score.get("signed", True))
            counts = layer_counts(sel["units"], n_layers(tables[next(iter(tables))], unit_type))
            rows.append({"unit_type": unit_type, "fraction": f, "k": sel["k"], "ood_units": sel["count"],
                         "share_of_k": sel["count"] / sel["k"], **{f"layer_{i}": c for i, c in enumerate(counts)}})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- tables behind the figures

def default_schemes(roles: dict) -> list[str]:
    """Every dataset, then fusion-in_domain / fusion-ood (when both groups exist), fusion-all,
    intersection-all and ood (when both groups exist)."""
    both = {"in_domain", "ood"} <= set(roles.values())
    out = sorted(roles)
    if len(roles) > 1:
        out += (["fusion-in_domain", "fusion-ood"] if both else []) + ["fusion-all", "intersection-all"]
    return out + (["ood"] if both else [])


def layer_distribution_table(tables: dict, roles: dict, schemes, unit_types, fraction: float,
                             classes=("relevant", "non_relevant"), parts=("total",), signed: bool = True) -> pd.DataFrame:
    """Per-layer counts of each scheme's NIG set (``nig_top``) at ``fraction``, for every unit type, class and
    part: rows (scheme, unit_type, class, part, fraction, k, count, layer, n, layer_units, share = n / layer_units)."""
    rows = []
    for unit_type in unit_types:
        layer_units = tables[next(iter(tables))].query("unit_type == @unit_type and part == 'total' and `class` == 'all'") \
            .groupby("layer").size()
        for scheme in schemes:
            for cls in classes:
                for part in parts:
                    sel = select_units(tables, roles, scheme, "nig_top", unit_type, fraction, cls=cls, part=part, signed=signed)
                    counts = layer_counts(sel["units"], len(layer_units))
                    for layer, n in enumerate(counts):
                        rows.append({"scheme": scheme, "unit_type": unit_type, "class": cls, "part": part,
                                     "fraction": fraction, "k": sel["k"], "count": sel["count"], "layer": layer, "n": n,
                                     "layer_units": int(layer_units[layer]), "share": n / int(layer_units[layer])})
    return pd.DataFrame(rows)


def overlap_table(tables: dict, roles: dict, schemes, unit_type: str, fraction: float, score: dict) -> pd.DataFrame:
    """Pairwise Jaccard of the schemes' NIG sets: rows (a, b, unit_type, fraction, size_a, size_b, jaccard,
    chance), chance = E[J] of two random k-subsets (the level two unrelated top-k sets would reach)."""
    sets = {s: {tuple(u) for u in select_units(tables, roles, s, "nig_top", unit_type, fraction,
                                                 cls=score.get("class", "relevant"), part=score.get("part", "total"),
                                                 signed=score.get("signed", True))["units"]} for s in schemes}
    n = int(len(tables[next(iter(tables))].query("unit_type == @unit_type and part == 'total' and `class` == 'all'")))
    k = k_for_fraction(n, fraction)
    return pd.DataFrame([{"a": a, "b": b, "unit_type": unit_type, "fraction": fraction, "size_a": len(sets[a]),
                          "size_b": len(sets[b]), "jaccard": jaccard(sets[a], sets[b]), "chance": chance_jaccard(n, k)}
                         for a in schemes for b in schemes])
