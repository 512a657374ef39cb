"""The tables behind the figures: per-layer counts of each scheme's NIG set, and pairwise overlaps of the sets."""

from __future__ import annotations

import pandas as pd

from irneurons.study.selection import chance_jaccard, jaccard, k_for_fraction, layer_counts, score_options, select_units


def layer_distribution_table(tables: dict, roles: dict, schemes, unit_types, fraction: float,
                             classes=("relevant", "non_relevant"), parts=("total",), signed: bool = True,
                             normalise_by: str = "zscore") -> pd.DataFrame:
    """Per-layer counts of each scheme's NIG set (``nig_top``) at ``fraction``, for every unit type, class and
    part: rows (scheme, unit_type, class, part, fraction, k, count, layer, n, layer_units, share = n / layer_units)."""
    rows = []
    for unit_type in unit_types:
        layer_units = tables[next(iter(tables))].query("unit_type == @unit_type and part == 'total' and `class` == 'all'") \
            .groupby("layer").size()
        for scheme in schemes:
            for cls in classes:
                for part in parts:
                    sel = select_units(tables, roles, scheme, "nig_top", unit_type, fraction, cls=cls, part=part, signed=signed,
                                       normalise_by=normalise_by)
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
                                                 **score_options(score))["units"]} for s in schemes}
    n = int(len(tables[next(iter(tables))].query("unit_type == @unit_type and part == 'total' and `class` == 'all'")))
    k = k_for_fraction(n, fraction)
    return pd.DataFrame([{"a": a, "b": b, "unit_type": unit_type, "fraction": fraction, "size_a": len(sets[a]),
                          "size_b": len(sets[b]), "jaccard": jaccard(sets[a], sets[b]), "chance": chance_jaccard(n, k)}
                         for a in schemes for b in schemes])
