"""Two models side by side: does a second model (e.g. the dense bi-encoder the cross-encoder was fine-tuned from)
rely on the same neurons?

For one dataset and unit type, with s_A, s_B the per-unit scores of each model
(:func:`irneurons.study.selection.scores`, the selection score of the pruning study) and T_A, T_B their top-k sets
(k = round(fraction · n)):

- J = |T_A ∩ T_B| / |T_A ∪ T_B|, against two nulls: E[J] of uniformly random k-sets (:func:`select.chance_jaccard`)
  and R random sets with T_B's per-layer counts (layer-matched: the layer profile alone), with
  p = (1 + #{J_r ≥ J}) / (R + 1);
- ρ = Spearman correlation of s_A and s_B over all units;
- the share of each top set per layer.
Both models must have the same unit layout (same base weights).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from irneurons.errors import DataError
from irneurons.retrieval import evaluation as evaluate
from irneurons.study import selection as select


def overlap(table_a: pd.DataFrame, table_b: pd.DataFrame, unit_type: str, fraction: float, score: dict,
            n_random: int = 200, seed: int = 0) -> dict:
    """One row of :func:`overlap_table` (see the module doc)."""
    opts = select.score_options(score)
    opts.pop("normalise_by")  # one dataset at a time: nothing is fused
    sa, sb = select.scores(table_a, unit_type, **opts), select.scores(table_b, unit_type, **opts)
    if not sa.index.equals(sb.index):
        raise ValueError(f"the two models' {unit_type} units differ (layouts {len(sa)} vs {len(sb)} units)")
    k = select.k_for_fraction(len(sa), fraction)
    top_a, top_b = set(select.top_k(sa, k)), set(select.top_k(sb, k))
    j = select.jaccard(top_a, top_b)
    per_layer = pd.Series([layer for layer, _ in top_b]).value_counts().to_dict()
    units = list(sa.index)
    null = np.array([select.jaccard(top_a, select.random_layer_matched(units, per_layer, [seed, r]))
                     for r in range(n_random)])
    layers = sorted({layer for layer, _ in units})
    return {
        "unit_type": unit_type, "fraction": fraction, "k": k, "jaccard": j,
        "chance_jaccard": select.chance_jaccard(len(units), k),
        "layer_matched_jaccard_mean": float(null.mean()), "layer_matched_jaccard_p95": float(np.quantile(null, 0.95)),
        "layer_matched_p": float((1 + (null >= j).sum()) / (n_random + 1)),
        "spearman": float(sa.rank().corr(sb.rank())),
        "layers_a": " ".join(str(sum(1 for l, _ in top_a if l == layer)) for layer in layers),
        "layers_b": " ".join(str(sum(1 for l, _ in top_b if l == layer)) for layer in layers),
    }


def overlap_table(tables_a: dict, tables_b: dict, fractions: dict, score: dict, n_random: int = 200,
                  seed: int = 0) -> pd.DataFrame:
    """:func:`overlap` for every dataset (keys of both dicts) × unit type × fraction."""
    rows = []
    for dataset in tables_a:
        for unit_type, fracs in fractions.items():
            for fraction in fracs:
                rows.append({"dataset": dataset, **overlap(tables_a[dataset], tables_b[dataset], unit_type, fraction,
                                                           score, n_random, seed)})
    return pd.DataFrame(rows)


def ndcg_table(baseline_a: pd.DataFrame, baseline_b: pd.DataFrame, name_a: str, name_b: str) -> pd.DataFrame:
    """nDCG@10 per dataset: BM25, model A's and model B's re-ranking (rows of the two baseline tables, whose model
    row is labelled by the model's kind: :data:`irneurons.retrieval.evaluation.MODEL_LABELS`)."""
    def pick(table, systems):
        rows = table[table["system"].isin(systems)]
        if rows["dataset"].duplicated().any():
            raise DataError(f"baseline table has several re-ranker rows per dataset ({', '.join(rows['system'])})")
        return rows.set_index("dataset")["ndcg@10"]

    models = set(evaluate.MODEL_LABELS.values())
    out = pd.DataFrame({"BM25": pick(baseline_a, {evaluate.SYSTEM_LABELS["first_stage"]}),
                        name_a: pick(baseline_a, models), name_b: pick(baseline_b, models)})
    return out.reset_index()
