"""Neuron selection: rankings, exact top-k, multi-dataset schemes (intersection, fusion, leave-one-collection-out),
relevance / contrast / OOD sets and their null controls.

A *score vector* is indexed by (layer, unit) for one unit type (FFN neurons and heads are never pooled). Scores
are the mean NIG of a class and part (signed or absolute), or the relevance contrast (relevant − non-relevant).
Several datasets are fused only after per-dataset normalisation (z-score by default), so the collection with
the larger conductance scale does not dominate. Top-k is exact: sort by score descending, ties broken by
(layer, unit) ascending, take the first k. ``loo-<d>`` selects on every dataset but d: the set pruned on d
never saw d.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats


def scores(table: pd.DataFrame, unit_type: str, cls: str = "relevant", part: str = "total", signed: bool = True,
           standardise: bool = False) -> pd.Series:
    """Score per (layer, unit) of one dataset's long table.

    ``cls`` relevant / non_relevant / all: the mean NIG over that class's pairs (|mean| if not ``signed``).
    ``cls`` contrast: the relevance contrast c = mean_rel − mean_nonrel; with ``standardise`` the Welch
    statistic c / sqrt(sd_rel²/n_rel + sd_nonrel²/n_nonrel) (units whose conductance differs between the
    classes, not units with large conductance on every pair).
    """
    def column(c, col="mean"):
        sel = table[(table["unit_type"] == unit_type) & (table["class"] == c) & (table["part"] == part)]
        if sel.empty:
            raise ValueError(f"no rows for unit_type={unit_type!r}, class={c!r}, part={part!r}")
        return sel.set_index(["layer", "unit"])[col].sort_index()

    if cls == "contrast":
        s = column("relevant") - column("non_relevant")
        if standardise:
            se = np.sqrt(column("relevant", "std") ** 2 / column("relevant", "n")
                         + column("non_relevant", "std") ** 2 / column("non_relevant", "n"))
            s = s / se.where(se > 0)
            s = s.fillna(0.0)
    else:
        s = column(cls)
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


NORMALISATIONS = ("zscore", "rank", "none")


def normalise(score: pd.Series, how: str = "zscore") -> pd.Series:
    """One dataset's score vector on a scale shared across datasets before fusing.

    ``zscore``: (s − mean(s)) / sd(s) (so a collection with a larger conductance scale does not dominate);
    ``rank``: average rank / n in (0, 1]; ``none``: s unchanged.
    """
    if how == "none":
        return score
    if how == "zscore":
        sd = score.std(ddof=0)
        return (score - score.mean()) / (sd if sd > 0 else 1.0)
    if how == "rank":
        return score.rank(method="average") / len(score)
    raise ValueError(f"unknown normalisation {how!r}: use one of {', '.join(NORMALISATIONS)}")


def fusion(score_by_dataset: dict[str, pd.Series], normalise_by: str = "zscore") -> pd.Series:
    """Mean over datasets of the per-dataset normalised score (:func:`normalise`; units aligned on (layer, unit))."""
    return pd.concat({d: normalise(s, normalise_by) for d, s in score_by_dataset.items()}, axis=1).mean(axis=1)


def intersection(score_by_dataset: dict[str, pd.Series], k: int) -> list[tuple[int, int]]:
    """Units in the top-k of every dataset (a subset of each member's top-k; may hold fewer than k)."""
    sets = [set(top_k(s, k)) for s in score_by_dataset.values()]
    return sorted(set.intersection(*sets))


def ood_units(score_by_dataset: dict[str, pd.Series], roles: dict[str, str], k: int,
              normalise_by: str = "zscore") -> list[tuple[int, int]]:
    """OOD neurons: in the top-k of the OOD datasets' fusion but not in the top-k of the in-domain fusion."""
    ood = {d: s for d, s in score_by_dataset.items() if roles[d] == "ood"}
    ind = {d: s for d, s in score_by_dataset.items() if roles[d] == "in_domain"}
    if not ood or not ind:
        raise ValueError("OOD neurons need at least one in_domain and one ood dataset")
    return sorted(set(top_k(fusion(ood, normalise_by), k)) - set(top_k(fusion(ind, normalise_by), k)))


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


def random_units(all_units: list[tuple[int, int]], k: int, seed) -> list[tuple[int, int]]:
    """k units drawn uniformly without replacement with ``numpy.random.default_rng(seed)``, sorted."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(all_units), size=k, replace=False)
    return sorted(tuple(map(int, all_units[i])) for i in idx)


def random_layer_matched(all_units: list[tuple[int, int]], per_layer: dict[int, int], seed) -> list[tuple[int, int]]:
    """Uniform within each layer: ``per_layer[l]`` units of layer l drawn without replacement
    (``numpy.random.default_rng(seed)``), so the set has exactly the reference set's per-layer counts."""
    rng = np.random.default_rng(seed)
    out = []
    for layer in sorted(per_layer):
        pool = [u for u in all_units if u[0] == layer]
        idx = rng.choice(len(pool), size=per_layer[layer], replace=False)
        out += [tuple(map(int, pool[i])) for i in idx]
    return sorted(out)


# --------------------------------------------------------------------------- schemes and strategies

GROUPS = ("all", "in_domain", "ood")
SINGLE_STRATEGIES = ("nig_top", "nig_negative", "nig_least", "magnitude", "contrast_top")
MULTI_STRATEGIES = ("random", "random_layer_matched")  # R sets per job
STRATEGIES = SINGLE_STRATEGIES + MULTI_STRATEGIES
RELATIVE_SCHEMES = ("self", "loo")  # resolved per evaluated dataset


def resolve_scheme(scheme: str, dataset: str) -> str:
    """A config scheme as used when pruning ``dataset``: ``self`` → the dataset's own set (its name),
    ``loo`` → ``loo-<dataset>`` (selected on every other collection); others unchanged."""
    return dataset if scheme == "self" else f"loo-{dataset}" if scheme == "loo" else scheme


def parse_scheme(scheme: str, roles: dict[str, str]) -> tuple[str, list[str]]:
    """(kind, member datasets) of a resolved scheme name.

    ``<dataset>`` → ("single", [dataset]); ``fusion-<group>`` / ``intersection-<group>`` → that kind over the
    group's datasets (group: all, in_domain, ood); ``loo-<dataset>`` → ("fusion", every other dataset):
    leave-one-collection-out, never selected on <dataset>; ``ood`` → ("ood", all datasets): OOD neurons.
    """
    if scheme in roles:
        return "single", [scheme]
    if scheme == "ood":
        return "ood", sorted(roles)
    kind, _, group = scheme.partition("-")
    if kind == "loo" and group in roles:
        members = sorted(d for d in roles if d != group)
        if not members:
            raise ValueError(f"scheme {scheme!r}: leave-one-collection-out needs at least two datasets")
        return "fusion", members
    if kind in ("fusion", "intersection") and group in GROUPS:
        members = sorted(d for d, r in roles.items() if group == "all" or r == group)
        if not members:
            raise ValueError(f"scheme {scheme!r}: no dataset has role {group!r}")
        return kind, members
    raise ValueError(
        f"unknown scheme {scheme!r}: use a dataset name, self, loo, loo-<dataset>, fusion-<group>, "
        f"intersection-<group> (group: {', '.join(GROUPS)}) or ood"
    )


def parse_strategy(strategy: str) -> str:
    """Validate a strategy name (see :func:`select_units`)."""
    if strategy in STRATEGIES:
        return strategy
    raise ValueError(f"unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")


def parse_strategy_entry(entry: str, default_sets: int, default_layer_matched: int) -> tuple[str, int]:
    """A config strategy entry → (strategy, number of sets): ``random`` / ``random_layer_matched`` take the
    configured number of sets, ``random:N`` / ``random_layer_matched:N`` override it; the others are one set."""
    name, _, n = entry.partition(":")
    parse_strategy(name)
    if name in SINGLE_STRATEGIES:
        if n:
            raise ValueError(f"strategy {entry!r}: only random strategies take a number of sets")
        return name, 1
    if n and not (n.isdigit() and int(n) >= 1):
        raise ValueError(f"strategy {entry!r}: the number of sets must be a positive integer")
    return name, int(n) if n else (default_sets if name == "random" else default_layer_matched)


def magnitude_scores(table: pd.DataFrame, unit_type: str) -> pd.Series:
    """Mean |activation| per (layer, unit) over all pairs and all real tokens (class ``all``, part ``total``)."""
    sel = table[(table["unit_type"] == unit_type) & (table["class"] == "all") & (table["part"] == "total")]
    if sel.empty or sel["absact_mean"].isna().all():
        raise ValueError(f"no activation magnitudes for unit_type={unit_type!r} (re-run the aggregate rule)")
    return sel.set_index(["layer", "unit"])["absact_mean"].sort_index()


def _scale_only(s: pd.Series) -> pd.Series:
    sd = s.std(ddof=0)
    return s / (sd if sd > 0 else 1.0)


@dataclass(frozen=True)
class ScoreOptions:
    """How units are scored before a selection (the config's ``pruning.score``).

    Args:
        cls: class whose mean NIG scores (``relevant`` | ``non_relevant`` | ``all`` | ``contrast``).
        part: token part (a part name or ``total``).
        signed: the signed mean (False: |mean|).
        normalise_by: per-dataset normalisation before fusing (:data:`NORMALISATIONS`).
        standardise: the ``contrast`` score as a Welch statistic.

    Examples:
        >>> ScoreOptions.from_config({"class": "relevant", "normalise": "rank"}).normalise_by
        'rank'
    """

    cls: str = "relevant"
    part: str = "total"
    signed: bool = True
    normalise_by: str = "zscore"
    standardise: bool = False

    @classmethod
    def from_config(cls, score: dict | None) -> ScoreOptions:
        """``pruning.score`` (keys class, part, signed, normalise, standardise; missing ones default)."""
        return cls(**score_options(score))


@dataclass(frozen=True)
class SelectionSpec:
    """Which unit set(s) to select (see :func:`select_units`).

    Args:
        scheme: a resolved scheme (:func:`parse_scheme`: a dataset, ``fusion-<group>``, ``loo-<d>``, ``ood``...).
        strategy: :data:`STRATEGIES`.
        unit_type: ``ffn`` | ``head``.
        fraction: k = round(fraction · n) units (≥ 1).
        score: :class:`ScoreOptions`.
        seed: seed of the random strategies.
        n_sets: sets drawn by a random strategy.

    Examples:
        >>> SelectionSpec("cranfield", "nig_top", "ffn", 0.01).score.cls
        'relevant'
    """

    scheme: str
    strategy: str
    unit_type: str
    fraction: float
    score: ScoreOptions = ScoreOptions()
    seed: int = 0
    n_sets: int = 1


def select_units(tables: dict[str, pd.DataFrame], roles: dict[str, str], spec: SelectionSpec) -> dict:
    """The unit set(s) a pruning strategy removes, with k, the scheme's members and per-member overlaps.

    n = number of units of ``spec.unit_type``; k = round(fraction · n) (≥ 1). Scores: :func:`scores` with
    (``cls``, ``part``, ``signed``) of ``spec.score``, fused over members after per-dataset :func:`normalise`
    (``normalise_by``). The scheme's *NIG set*: single / fusion / loo → top-k of the fused score; intersection →
    units in every member's top-k (≤ k); ood → top-k of the OOD datasets' fusion minus the top-k of the in-domain
    fusion (≤ k). Every strategy removes exactly c = |NIG set| units:

    - ``nig_top``: the NIG set;  ``contrast_top``: top-c of the fused relevance contrast (:func:`scores`
      with class ``contrast``; ``standardise`` → Welch statistic);
    - ``nig_negative``: the c most negative fused signed scores (they matter too: not a null);
    - ``nig_least``: the c smallest Σ_d |s_d| / sd(s_d) (units that conduct least: the "unimportant" control);
    - ``magnitude``: the c highest fused mean |activation|;
    - ``random``: ``n_sets`` sets of c units uniform without replacement; set i uses seed (seed, 1, c, i), so
      it is the same for every scheme of the same size and growing ``n_sets`` keeps the first sets;
    - ``random_layer_matched``: ``n_sets`` sets uniform within each layer with the NIG set's per-layer counts.

    For ``ood`` the base score of the other strategies is the fusion of the OOD datasets.

    Args:
        tables: dataset → its neurons long table (columns unit_type, layer, unit, part, class, mean, std, n,
            absact_mean).
        roles: dataset → ``in_domain`` | ``ood``.
        spec: :class:`SelectionSpec`.

    Returns:
        JSON-ready dict: scheme, kind, members, strategy, unit_type, fraction, n_units, k, count, n_sets, score,
        sets (``n_sets`` lists of [layer, unit]); ``units`` (the one set) when there is one; ``from_member_top_k``
        for several members.

    Examples:
        >>> select_units(tables, roles, SelectionSpec("fusion-all", "nig_top", "ffn", 0.01))["k"]  # doctest: +SKIP
        92
    """
    scheme, strategy, unit_type, fraction = spec.scheme, spec.strategy, spec.unit_type, spec.fraction
    cls, part, signed = spec.score.cls, spec.score.part, spec.score.signed
    normalise_by, standardise = spec.score.normalise_by, spec.score.standardise
    seed, n_sets = spec.seed, spec.n_sets
    kind, members = parse_scheme(scheme, roles)
    parse_strategy(strategy)
    opts = dict(part=part, signed=signed, standardise=standardise)
    per_ds = {d: scores(tables[d], unit_type, cls, **opts) for d in members}
    n_units = len(next(iter(per_ds.values())))
    k = k_for_fraction(n_units, fraction)
    if kind == "intersection":
        nig_set = intersection(per_ds, k)
    elif kind == "ood":
        nig_set = ood_units(per_ds, roles, k, normalise_by)
    else:
        nig_set = top_k(fusion(per_ds, normalise_by), k)
    base = [d for d in members if kind != "ood" or roles[d] == "ood"]
    count = len(nig_set)
    all_units = list(next(iter(per_ds.values())).index)
    sets: list[list[tuple[int, int]]]
    if strategy == "nig_top":
        sets = [sorted(nig_set)]
    elif strategy == "contrast_top":
        contrast = {d: scores(tables[d], unit_type, "contrast", **opts) for d in base}
        sets = [sorted(top_k(fusion(contrast, normalise_by), count))]
    elif strategy == "nig_negative":
        sets = [sorted(bottom_k(fusion({d: per_ds[d] for d in base}, normalise_by), count))]
    elif strategy == "nig_least":
        raw = {d: scores(tables[d], unit_type, cls, part=part, signed=False, standardise=standardise) for d in base}
        least = pd.concat({d: _scale_only(s) for d, s in raw.items()}, axis=1).sum(axis=1)
        sets = [sorted(bottom_k(least, count))]
    elif strategy == "magnitude":
        sets = [sorted(top_k(fusion({d: magnitude_scores(tables[d], unit_type) for d in base}, normalise_by), count))]
    elif strategy == "random":
        sets = [random_units(all_units, count, (seed, 1, count, i)) if count else [] for i in range(n_sets)]
    else:
        per_layer = {}
        for layer, _ in nig_set:
            per_layer[layer] = per_layer.get(layer, 0) + 1
        sets = [random_layer_matched(all_units, per_layer, (seed, 2, count, i)) for i in range(n_sets)]
    out = {
        "scheme": scheme, "kind": kind, "members": members, "strategy": strategy, "unit_type": unit_type,
        "fraction": fraction, "n_units": n_units, "k": k, "count": count, "n_sets": len(sets),
        "score": {"class": cls, "part": part, "signed": signed, "normalise": normalise_by, "standardise": standardise},
        "sets": [[list(u) for u in s] for s in sets],
    }
    if len(sets) == 1:
        out["units"] = out["sets"][0]
    if len(members) > 1 and kind != "ood":
        # how many of the set's units each member would have chosen on its own (its own top-k)
        own = {d: set(top_k(per_ds[d], k)) for d in members}
        out["from_member_top_k"] = {d: sum(tuple(u) in own[d] for u in sets[0]) for d in members}
    return out


def n_layers(table: pd.DataFrame, unit_type: str) -> int:
    """Number of layers of ``unit_type`` in a neurons long table (highest layer index + 1)."""
    return int(table.loc[table["unit_type"] == unit_type, "layer"].max()) + 1


def layer_counts(units, layers: int) -> list[int]:
    """Number of selected units per layer (layers 0..layers−1)."""
    counts = [0] * layers
    for layer, _ in units:
        counts[int(layer)] += 1
    return counts


def score_options(score: dict | None) -> dict:
    """``pruning.score`` config → the fields of :class:`ScoreOptions` as a dict (cls, part, signed, normalise_by,
    standardise)."""
    score = score or {}
    return {"cls": score.get("class", "relevant"), "part": score.get("part", "total"),
            "signed": score.get("signed", True), "normalise_by": score.get("normalise", "zscore"),
            "standardise": score.get("standardise", False)}


def write_selection(path, table_paths: dict, roles: dict, spec: SelectionSpec, provenance: dict | None = None) -> dict:
    """Read the members' neuron tables, :func:`select_units`, write the set(s) (with per-layer counts) as JSON.

    Args:
        path: the JSON file written.
        table_paths: member dataset → its neurons table (parquet).
        roles: dataset → role.
        spec: :class:`SelectionSpec`.
        provenance: stored under ``provenance``.

    Returns:
        The selection dict written (:func:`select_units` plus ``per_layer`` counts and ``provenance``).
    """
    import json

    columns = ["unit_type", "layer", "unit", "part", "class", "mean", "std", "n", "absact_mean"]
    tables = {d: pd.read_parquet(p, columns=columns) for d, p in table_paths.items()}
    sel = select_units(tables, roles, spec)
    layers = n_layers(next(iter(tables.values())), spec.unit_type)
    sel["per_layer"] = [layer_counts(s, layers) for s in sel["sets"]]
    sel["provenance"] = provenance or {}
    with open(path, "w") as fh:
        json.dump(sel, fh, indent=1)
    return sel


def ood_table(tables: dict, roles: dict, fractions: dict, score: dict) -> pd.DataFrame:
    """Size of the OOD-neuron set (top-k of the OOD fusion minus top-k of the in-domain fusion) and its
    per-layer counts, per unit type and fraction. Empty when there is no in-domain/OOD pair of groups."""
    if not ({"in_domain", "ood"} <= set(roles.values())):
        return pd.DataFrame(columns=["unit_type", "fraction", "k", "ood_units"])
    rows, opts = [], ScoreOptions.from_config(score)
    for unit_type, fracs in fractions.items():
        for f in fracs:
            sel = select_units(tables, roles, SelectionSpec("ood", "nig_top", unit_type, f, opts))
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


def default_grid(roles: dict) -> dict:
    """The FFN pruning grid's schemes when the config gives none, adapted to the datasets declared:
    ``self`` always; ``loo`` with ≥ 2 datasets; ``ood`` only with an in_domain and an ood dataset."""
    grid = {"self": ["nig_top", "contrast_top", "nig_least", "random", "random_layer_matched"]}
    if len(roles) > 1:
        grid["loo"] = ["nig_top", "random_layer_matched"]
    if {"in_domain", "ood"} <= set(roles.values()):
        grid["ood"] = ["nig_top", "random", "random_layer_matched"]
    return grid
