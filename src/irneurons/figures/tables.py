"""The tables behind the figures: per-layer counts of each scheme's NIG set, and pairwise overlaps of the sets."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from irneurons.study.selection import (
    ScoreOptions,
    SelectionSpec,
    chance_jaccard,
    jaccard,
    k_for_fraction,
    layer_counts,
    select_units,
)


def _score(score: ScoreOptions | dict | None) -> ScoreOptions:
    return score if isinstance(score, ScoreOptions) else ScoreOptions.from_config(score)


def layer_distribution_table(tables: dict, roles: dict, schemes, unit_types, fraction: float,
                             classes=("relevant", "non_relevant"), parts=("total",),
                             score: ScoreOptions | dict | None = None) -> pd.DataFrame:
    """Per-layer counts of each scheme's NIG set (``nig_top``) at ``fraction``, for every unit type, class and part.

    Args:
        tables: dataset → neurons long table; roles: dataset → role.
        schemes: resolved schemes; unit_types: ``ffn`` / ``head``; fraction: k = round(fraction · n).
        classes, parts: the classes and token parts scored (they override ``score``'s class and part).
        score: :class:`irneurons.study.selection.ScoreOptions` or the config's ``pruning.score`` (sign and fusion
            normalisation are used); None = defaults.

    Returns:
        DataFrame with rows (scheme, unit_type, class, part, fraction, k, count, layer, n, layer_units,
        share = n / layer_units).
    """
    base = _score(score)
    rows = []
    for unit_type in unit_types:
        layer_units = tables[next(iter(tables))] \
            .query("unit_type == @unit_type and part == 'total' and `class` == 'all'").groupby("layer").size()
        for scheme in schemes:
            for cls in classes:
                for part in parts:
                    spec = SelectionSpec(scheme, "nig_top", unit_type, fraction, replace(base, cls=cls, part=part))
                    sel = select_units(tables, roles, spec)
                    counts = layer_counts(sel["units"], len(layer_units))
                    for layer, n in enumerate(counts):
                        rows.append({"scheme": scheme, "unit_type": unit_type, "class": cls, "part": part,
                                     "fraction": fraction, "k": sel["k"], "count": sel["count"], "layer": layer,
                                     "n": n, "layer_units": int(layer_units[layer]),
                                     "share": n / int(layer_units[layer])})
    return pd.DataFrame(rows)


def overlap_table(tables: dict, roles: dict, schemes, unit_type: str, fraction: float, score: dict) -> pd.DataFrame:
    """Pairwise Jaccard of the schemes' NIG sets: rows (a, b, unit_type, fraction, size_a, size_b, jaccard,
    chance), chance = E[J] of two random k-subsets (the level two unrelated top-k sets would reach)."""
    opts = _score(score)
    sets = {s: {tuple(u) for u in select_units(tables, roles, SelectionSpec(s, "nig_top", unit_type, fraction,
                                                                            opts))["units"]} for s in schemes}
    n = int(len(tables[next(iter(tables))].query("unit_type == @unit_type and part == 'total' and `class` == 'all'")))
    k = k_for_fraction(n, fraction)
    return pd.DataFrame([{"a": a, "b": b, "unit_type": unit_type, "fraction": fraction, "size_a": len(sets[a]),
                          "size_b": len(sets[b]), "jaccard": jaccard(sets[a], sets[b]), "chance": chance_jaccard(n, k)}
                         for a in schemes for b in schemes])
