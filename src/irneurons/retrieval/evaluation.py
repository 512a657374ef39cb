"""Evaluation: pytrec_eval measures per query and mean, run files, score fusion, paired tests with Holm correction."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from irneurons.errors import RankerError

# Our name → (pytrec_eval measure, key in its output, depth the run is cut to before evaluation)
MEASURES = {
    "ndcg@10": ("ndcg_cut", "ndcg_cut_10", None),
    "mrr@10": ("recip_rank", "recip_rank", 10),
    "recall@100": ("recall", "recall_100", None),
    "map": ("map", "map", None),
}
#: Measures that use graded gains (trec_eval's own relevance level 1); all others are binary and count a
#: document as relevant when its gain ≥ ``relevance_level`` (the dataset's ``relevant_min_grade``).
GRADED = frozenset({"ndcg@10"})


def qrels_dict(qrels: pd.DataFrame) -> dict[str, dict[str, int]]:
    """{qid: {doc_id: gain}} from a qrels table with a ``gain`` column (gain 0 rows kept: judged non-relevant)."""
    out: dict[str, dict[str, int]] = {}
    for q, d, g in zip(qrels["qid"], qrels["doc_id"], qrels["gain"]):
        out.setdefault(str(q), {})[str(d)] = int(g)
    return out


def run_dict(run: pd.DataFrame, score_col: str = "score") -> dict[str, dict[str, float]]:
    """{qid: {doc_id: score}} from a table with qid, doc_id and a score column."""
    out: dict[str, dict[str, float]] = {}
    for q, d, s in zip(run["qid"], run["doc_id"], run[score_col]):
        out.setdefault(str(q), {})[str(d)] = float(s)
    return out


def _cut(run: dict, depth: int) -> dict:
    # Ties broken by doc id descending, as trec_eval does, so the cut agrees with trec_eval's own ranking.
    return {q: dict(sorted(docs.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)[:depth])
            for q, docs in run.items()}


def per_query_metrics(run: dict, qrels: dict, measures=tuple(MEASURES), relevance_level: int = 1) -> pd.DataFrame:
    """Per-query metrics (rows: qid, columns: measure names) with pytrec_eval.

    nDCG@10 uses trec_eval's linear gains and log2 discount with the ideal ranking from all qrels of the query
    (graded: ``relevance_level`` does not change it). The binary measures (MRR@10, MAP, R@100) count a document
    as relevant when its gain ≥ ``relevance_level`` (pytrec_eval's ``relevance_level``; pass the dataset's
    ``relevant_min_grade``): MRR@10 is 1/rank of the first such document within the top 10 (0 if none).
    Queries in the qrels but absent from the run score 0 (every measure), so a system is never rewarded for
    skipping queries.
    """
    import pytrec_eval

    frames = {}
    for name in measures:
        measure, key, depth = MEASURES[name]
        r = _cut(run, depth) if depth else run
        level = 1 if name in GRADED else int(relevance_level)
        ev = pytrec_eval.RelevanceEvaluator(qrels, {measure}, relevance_level=level)
        res = ev.evaluate(r)
        frames[name] = {q: res.get(q, {}).get(key, 0.0) for q in qrels}
    df = pd.DataFrame(frames)
    df.index.name = "qid"
    return df.sort_index()


def write_trec_run(run: pd.DataFrame, path, tag: str, score_col: str = "score") -> None:
    """Write a TREC run file: ``qid Q0 doc_id rank score tag``, ranks from scores (ties by doc id)."""
    df = run[["qid", "doc_id", score_col]].copy()
    df = df.sort_values(["qid", score_col, "doc_id"], ascending=[True, False, True])
    df["rank"] = df.groupby("qid").cumcount() + 1
    with open(path, "w") as fh:
        for q, d, r, s in zip(df["qid"], df["doc_id"], df["rank"], df[score_col]):
            fh.write(f"{q} Q0 {d} {r} {s:.6f} {tag}\n")


def zscore_per_query(run: pd.DataFrame, score_col: str) -> pd.Series:
    """z(s) = (s − mean_q) / std_q over each query's candidate list (std 0 → 0)."""
    g = run.groupby("qid")[score_col]
    std = g.transform("std", ddof=0).replace(0, np.nan)
    return ((run[score_col] - g.transform("mean")) / std).fillna(0.0)


def summarise(per_query: pd.DataFrame) -> dict:
    """Mean of each measure over queries (NaN-free: missing queries already count as 0)."""
    return {k: (float(v) if not math.isnan(v) else None) for k, v in per_query.mean().items()}


#: Row label of the re-ranking model in the baseline table, by its kind (:mod:`irneurons.rankers.kinds`).
MODEL_LABELS = {"cross_encoder": "cross-encoder", "bi_encoder": "bi-encoder", "t5": "monoT5",
                "causal_lm": "LLM re-ranker"}
#: Short model names in the fusion row's label (others: the model label).
FUSION_SHORT = {"cross_encoder": "CE"}
#: Labels of a cross-encoder study's systems (the scored files' columns: first_stage, cross_encoder, fusion).
SYSTEM_LABELS = {"first_stage": "BM25 (first stage)", "cross_encoder": "cross-encoder",
                 "fusion": "fusion z(BM25)+z(CE)"}


def system_labels(kind: str = "cross_encoder") -> dict[str, str]:
    """Row labels of the baseline table's systems when the re-ranker is of ``kind``.

    The model's scores sit in the ``cross_encoder`` column whatever the kind; its row is labelled by the kind.

    Args:
        kind: ``cross_encoder``, ``bi_encoder``, ``t5`` or ``causal_lm``.

    Returns:
        {column: label} for ``first_stage``, ``cross_encoder`` and ``fusion``.

    Examples:
        >>> system_labels("bi_encoder")["cross_encoder"]
        'bi-encoder'
    """
    if kind not in MODEL_LABELS:
        raise RankerError(f"model kind {kind!r} is not one of {', '.join(MODEL_LABELS)}")
    label = MODEL_LABELS[kind]
    return {**SYSTEM_LABELS, "cross_encoder": label, "fusion": f"fusion z(BM25)+z({FUSION_SHORT.get(kind, label)})"}


def model_kind(ref: dict) -> str:
    """The kind of the model of a ``model.json`` record: its ``kind``, or when that is None / ``auto`` the kind
    detected from the model's config as :func:`irneurons.rankers.loading.load_from_ref` detects it (config
    only: no weights are loaded).

    Args:
        ref: a ``model.json`` record (:func:`irneurons.rankers.loading.read_model_ref`).

    Returns:
        ``cross_encoder``, ``bi_encoder``, ``t5`` or ``causal_lm``.
    """
    kind = ref.get("kind")
    if kind not in (None, "auto"):
        return kind
    from pathlib import Path

    from transformers import AutoConfig

    from irneurons.rankers.kinds import detect_kind
    from irneurons.rankers.loading import resolve_model_source

    source = resolve_model_source(ref["source"])
    return detect_kind(AutoConfig.from_pretrained(source), source if Path(source).is_dir() else None)


def baseline_table(records: list[dict], measures=tuple(MEASURES), kind: str = "cross_encoder") -> pd.DataFrame:
    """Rows (dataset, system): mean of each measure; for nDCG@10 also Δ vs first stage and paired-test p-values.
    The model's row is labelled by its ``kind`` (:func:`system_labels`)."""
    labels = system_labels(kind)
    rows = []
    for rec in records:
        for system, res in rec["systems"].items():
            row = {"dataset": rec["dataset"], "system": labels.get(system, system), "queries": rec["n_queries"]}
            row.update({m: res["mean"][m] for m in measures})
            t = res["vs_first_stage"]["ndcg@10"]
            row.update({"Δndcg@10": t["delta"], "t_p": t["t_p"], "wilcoxon_p": t["wilcoxon_p"]})
            rows.append(row)
    return pd.DataFrame(rows)


def to_markdown(df: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-markdown table (floats rounded to ``digits``; NaN shown as –)."""

    def fmt(v):
        if isinstance(v, float):
            return "–" if math.isnan(v) else f"{v:.{digits}f}"
        return str(v)

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)
