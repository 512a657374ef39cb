"""Fine-tune an encoder into a 1-logit cross-encoder over groups of one positive and G−1 BM25 negatives.

Groups (../shared/notes/finetune-recipe.md, v2): for each positive (query, relevant doc) draw G−1 negatives
uniformly without replacement from the query's first-stage candidates that have no qrels row. ``loss`` picks
what the group's scores F learn:

* ``contrastive``: softmax cross-entropy with the positive as the target class,
  L_CE = −log( exp F(q, d⁺) / Σ_{d ∈ group} exp F(q, d) ).
* ``distill``: listwise distillation from a teacher's scores s_t (the zero-shot bi-encoder's cosines,
  :func:`teacher_pairs`), L_KL = Σ_d p_t(d) (log p_t(d) − log softmax(F)(d)) with p_t = softmax(s_t / τ).
* ``distill_positives``: L_KL + w · L_CE (the judged or self-supervised positive kept as a hard label).

AdamW (weight decay 0.01, gradient-norm clip 1.0) with a high learning rate on the fresh head (classifier and
pooler) and a low one on the encoder; linear warm-up then linear decay to 0 at ``steps``. The number of steps is
fixed (not wall-clock driven) so that the same seed gives the same model.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from dataclasses import asdict, dataclass
from typing import NamedTuple

import pandas as pd

log = logging.getLogger(__name__)


@dataclass
class FinetuneConfig:
    steps: int = 800
    groups_per_step: int = 2
    group_size: int = 8
    lr_encoder: float = 5e-5
    lr_head: float = 1e-3
    warmup_steps: int = 30
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    max_length: int = 128
    max_query_share: float = 0.5  # queries keep at most this share of max_length (irneurons.rankers.loading.truncate_queries)
    bf16: bool | str = "auto"  # auto | True | False; finetune() resolves it for the model's device (numerics.py)
    seed: int = 0
    max_seconds: float | None = None  # safety cap; hitting it is logged (the run is then not step-exact)
    pseudo_queries: int = 0  # title → body pairs added per in-domain corpus (0 = off)
    loss: str = "contrastive"  # contrastive | distill | distill_positives (module docstring)
    temperature: float = 0.05  # τ of the teacher's softmax (cosines / τ; sentence-transformers' scale 20)
    positive_weight: float = 1.0  # w of the hard-label term in distill_positives

    LOSSES = ("contrastive", "distill", "distill_positives")

    @classmethod
    def from_dict(cls, d: dict) -> "FinetuneConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class TrainingData(NamedTuple):
    """What :func:`finetune` trains on: texts by id, the positives [(qid, doc_id)] and each query's negative pool."""

    queries: dict[str, str]
    docs: dict[str, str]
    positives: list[tuple[str, str]]
    pools: dict[str, list[str]]


def training_groups(
    qrels: pd.DataFrame, candidates: pd.DataFrame, train_qids, group_size: int, relevant_min_grade: int = 1
) -> tuple[list[tuple[str, str]], dict[str, list[str]]]:
    """Positives [(qid, doc_id)] with gain ≥ ``relevant_min_grade`` and, per query, its negative pool
    (candidates with no qrels row: judged documents below the threshold are neither positives nor negatives).

    Queries whose pool has fewer than ``group_size − 1`` negatives are dropped (a group must be full).
    """
    train_qids = set(train_qids)
    q = qrels[qrels["qid"].isin(train_qids)]
    judged = set(zip(q["qid"], q["doc_id"]))
    pools: dict[str, list[str]] = {}
    for qid, doc in zip(candidates["qid"], candidates["doc_id"]):
        if qid in train_qids and (qid, doc) not in judged:
            pools.setdefault(qid, []).append(doc)
    pools = {k: sorted(v) for k, v in pools.items() if len(v) >= group_size - 1}
    pos = sorted((a, b) for a, b, g in zip(q["qid"], q["doc_id"], q["gain"]) if g >= relevant_min_grade and a in pools)
    return pos, pools


def linear_schedule(step: int, warmup: int, total: int) -> float:
    """LR multiplier: (step+1)/warmup during warm-up, then linear decay (total − step)/(total − warmup) to 0."""
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def finetune(
    model,
    tokenizer,
    data: TrainingData,
    cfg: FinetuneConfig,
    *,
    progress: bool = True,
    teacher: dict[tuple[str, str], float] | None = None,
) -> dict:
    """Train ``model`` in place on ``data`` (:func:`training_data`); returns a log dict (losses per step, steps
    done, seconds, config). ``teacher``: {(qid, doc_id): score} of every pair a group can hold
    (:func:`teacher_scores`), needed by the distill losses.

    ``cfg.bf16`` may be ``"auto"``: it is resolved for the model's device (:func:`irneurons.numerics.numerics_record`,
    logged once); the log dict records the resolved value (``bf16``) and the whole record (``numerics``).
    Queries are truncated by :func:`irneurons.rankers.loading.truncate_queries` (``cfg.max_query_share``); the log dict's
    ``truncation`` record (and ``truncated_queries``) counts the distinct training queries that were cut.
    """
    import torch
    from tqdm.auto import tqdm

    from irneurons.rankers.encoding import encode, truncation_message, truncation_record
    from irneurons.numerics import numerics_record

    queries, docs, positives, pools = data
    if cfg.loss not in FinetuneConfig.LOSSES:
        raise ValueError(f"finetune.loss {cfg.loss!r} is not one of {', '.join(FinetuneConfig.LOSSES)}")
    if cfg.loss != "contrastive" and teacher is None:
        raise ValueError(f"finetune.loss {cfg.loss!r} needs teacher scores (finetune.teacher)")
    if not positives:
        raise ValueError("no training positives: the train split has no judged relevant documents with enough negatives")
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    head_names = ("classifier", "pooler")
    head = [p for n, p in model.named_parameters() if any(h in n for h in head_names)]
    body = [p for n, p in model.named_parameters() if not any(h in n for h in head_names)]
    opt = torch.optim.AdamW(
        [{"params": body, "lr": cfg.lr_encoder}, {"params": head, "lr": cfg.lr_head}], weight_decay=cfg.weight_decay
    )
    base_lrs = [g["lr"] for g in opt.param_groups]
    device = next(model.parameters()).device
    numerics = numerics_record(cfg.bf16, device)
    bf16 = numerics["bf16"]
    truncation = truncation_record(tokenizer, [queries[q] for q in sorted({q for q, _ in positives})], cfg.max_length,
                                   cfg.max_query_share)
    log.info("training queries: %s", truncation_message(truncation))
    model.train()
    order: list[tuple[str, str]] = []
    losses: list[float] = []
    start = time.perf_counter()
    bar = tqdm(range(cfg.steps), desc="fine-tune", unit="step", disable=not progress, mininterval=10)
    for step in bar:
        if cfg.max_seconds is not None and time.perf_counter() - start > cfg.max_seconds:
            log.warning("fine-tuning stopped by max_seconds=%s after %d of %d steps", cfg.max_seconds, step, cfg.steps)
            break
        qs, ds, group_pairs = [], [], []
        for _ in range(cfg.groups_per_step):
            if not order:  # a new pass over the positives, in a seeded order
                order = positives.copy()
                rng.shuffle(order)
            qid, pos = order.pop()
            negs = rng.sample(pools[qid], cfg.group_size - 1)
            qs += [queries[qid]] * cfg.group_size
            ds += [docs[pos]] + [docs[n] for n in negs]
            group_pairs += [(qid, d) for d in [pos, *negs]]
        enc = encode(tokenizer, qs, ds, cfg.max_length, max_query_share=cfg.max_query_share).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(**enc).logits[:, 0]
        scores = logits.float().view(cfg.groups_per_step, cfg.group_size)
        loss = group_loss(scores, cfg, None if teacher is None else
                          torch.tensor([teacher[p] for p in group_pairs], dtype=torch.float32,
                                       device=device).view_as(scores))
        mult = linear_schedule(step, cfg.warmup_steps, cfg.steps)
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * mult
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        opt.step()
        losses.append(float(loss.detach()))
        if step % 50 == 0 or step == cfg.steps - 1:
            recent = losses[-50:]
            bar.set_postfix(loss=f"{sum(recent) / len(recent):.3f}")
            log.info("step %d loss(avg50) %.4f lr_mult %.3f", step, sum(recent) / len(recent), mult)
    model.eval()
    return {
        "steps_done": len(losses),
        "seconds": time.perf_counter() - start,
        "initial_loss_expected": math.log(cfg.group_size),
        "loss_first50": sum(losses[:50]) / max(1, len(losses[:50])),
        "loss_last50": sum(losses[-50:]) / max(1, len(losses[-50:])),
        "losses": losses,
        "config": asdict(cfg),
        "bf16": bf16,
        "numerics": numerics,
        "loss": cfg.loss,
        "n_positives": len(positives),
        "n_queries": len(pools),
        "truncated_queries": truncation["truncated_queries"],
        "truncation": truncation,
    }


def group_loss(scores, cfg: FinetuneConfig, teacher_scores=None):
    """The loss of [groups, G] student scores whose column 0 is the positive (module docstring: ``cfg.loss``);
    ``teacher_scores`` [groups, G] are the teacher's raw scores (divided by ``cfg.temperature`` here)."""
    import torch
    import torch.nn.functional as F

    ce = F.cross_entropy(scores, torch.zeros(scores.shape[0], dtype=torch.long, device=scores.device))
    if cfg.loss == "contrastive":
        return ce
    log_p_student = F.log_softmax(scores, dim=-1)
    log_p_teacher = F.log_softmax(teacher_scores / cfg.temperature, dim=-1)
    kl = F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="batchmean")
    return kl if cfg.loss == "distill" else kl + cfg.positive_weight * ce


def teacher_pairs(positives, pools) -> list[tuple[str, str]]:
    """Every (query, doc) pair a training group can hold: each query's positives and its negative pool."""
    pairs = set(positives)
    for qid, negs in pools.items():
        pairs.update((qid, d) for d in negs)
    return sorted(pairs)


def teacher_scores(model, tokenizer, queries: dict, docs: dict, pairs, options=None) -> dict[tuple[str, str], float]:
    """The teacher's score of every pair (:func:`irneurons.rankers.scoring.score_pairs`: a bi-encoder embeds
    each distinct query and document once); {(qid, doc_id): score}."""
    from irneurons.rankers.scoring import score_pairs

    scores = score_pairs(model, tokenizer, [queries[q] for q, _ in pairs], [docs[d] for _, d in pairs], options)
    return {p: float(s) for p, s in zip(pairs, scores)}


def save_train_log(path, info: dict) -> None:
    with open(path, "w") as fh:
        json.dump(info, fh, indent=1)


def title_pseudo_queries(docs: pd.DataFrame, n: int, group_size: int, seed: int, depth: int = 50, exclude=None):
    """Self-supervised pairs from the corpus alone: a document's title is the query, its body the positive.

    Picks ``n`` documents (seeded) whose title has ≥ 3 words and whose body is non-empty once the title is
    stripped; negatives are the BM25 top-``depth`` bodies for the title, minus the document itself. All texts
    are bodies without titles, so the positive cannot be found by copying the title. Uses no relevance
    judgments. Documents in ``exclude`` (ids) are removed from the corpus first: they are never a pseudo-query's
    source, positive or negative (:func:`held_out_docs`). Returns (queries, docs, positives, pools) keyed
    ``title:<doc_id>`` / ``body:<doc_id>``.
    """
    import numpy as np

    from irneurons.retrieval.firststage import bm25_candidates

    if "title" not in docs:
        return {}, {}, [], {}
    if exclude:
        docs = docs[~docs["doc_id"].isin(set(exclude))]
    bodies = [t[len(ti):].lstrip(" .") if ti and t.startswith(ti) else t for t, ti in zip(docs["text"], docs["title"])]
    frame = pd.DataFrame({"doc_id": docs["doc_id"], "text": bodies, "title": docs["title"]})
    eligible = frame[(frame["title"].str.split().str.len() >= 3) & (frame["text"].str.len() > 0)]
    if eligible.empty or n <= 0:
        return {}, {}, [], {}
    pick = eligible.iloc[np.sort(np.random.default_rng(seed).permutation(len(eligible))[:n])]
    cand = bm25_candidates(frame, pick.rename(columns={"doc_id": "qid", "text": "body", "title": "text"}), depth)
    pools = {}
    for qid, doc in zip(cand["qid"], cand["doc_id"]):
        if doc != qid:
            pools.setdefault(f"title:{qid}", []).append(f"body:{doc}")
    pools = {k: v for k, v in pools.items() if len(v) >= group_size - 1}
    queries = {f"title:{d}": t for d, t in zip(pick["doc_id"], pick["title"]) if f"title:{d}" in pools}
    positives = sorted((q, "body:" + q.split(":", 1)[1]) for q in queries)
    body = {f"body:{d}": t for d, t in zip(frame["doc_id"], frame["text"])}
    return queries, body, positives, pools


def held_out_docs(queries: pd.DataFrame, qrels: pd.DataFrame) -> set[str]:
    """Ids of every document judged (any grade, 0 included) for a query outside the train split (test and
    attribution queries): the corpus of the self-supervised pseudo-queries excludes them, so fine-tuning never
    sees the documents evaluation and attribution are about (docs.parquet holds the judged docs of every split)."""
    held = set(queries.loc[queries["split"] != "train", "qid"])
    return set(qrels.loc[qrels["qid"].isin(held), "doc_id"])


def training_data(tables: list[dict], group_size: int, pseudo_queries: int = 0, seed: int = 0):
    """Merge the in-domain datasets' tables into (queries, docs, positives, pools) for :func:`finetune`.

    ``tables``: one dict per dataset with ``name`` and DataFrames ``queries`` (with ``split``), ``qrels``,
    ``candidates``, ``docs``, and optionally ``relevant_min_grade`` (default 1: positives are the train qrels
    with gain ≥ it). Ids are prefixed ``<name>/`` so datasets never collide. Only train queries are used;
    ``pseudo_queries`` > 0 adds that many title → body pairs per dataset (:func:`title_pseudo_queries`), drawn
    from the corpus minus every document judged for a test or attribution query (:func:`held_out_docs`).
    """
    queries, docs, positives, pools = {}, {}, [], {}
    for t in tables:
        pre = f"{t['name']}/"
        if pseudo_queries:
            pq, pd_, ppos, ppools = title_pseudo_queries(t["docs"], pseudo_queries, group_size, seed,
                                                         exclude=held_out_docs(t["queries"], t["qrels"]))
            queries.update({pre + q: v for q, v in pq.items()})
            docs.update({pre + d: v for d, v in pd_.items()})
            positives += [(pre + q, pre + d) for q, d in ppos]
            pools.update({pre + q: [pre + d for d in ds] for q, ds in ppools.items()})
        train = t["queries"][t["queries"]["split"] == "train"]
        pos, pool = training_groups(t["qrels"], t["candidates"], train["qid"], group_size,
                                    int(t.get("relevant_min_grade", 1)))
        queries.update({pre + q: text for q, text in zip(train["qid"], train["text"])})
        docs.update({pre + d: text for d, text in zip(t["docs"]["doc_id"], t["docs"]["text"])})
        positives += [(pre + q, pre + d) for q, d in pos]
        pools.update({pre + q: [pre + d for d in ds] for q, ds in pool.items()})
    return TrainingData(queries, docs, positives, pools)


def training_tables(queries, qrels, candidates, docs, relevant_min_grade: dict[str, int]) -> list[dict]:
    """The :func:`training_data` tables of the fine-tuning rules' inputs (parallel lists of parquet paths, one per
    in-domain dataset, each under ``.../<dataset>/``); ``relevant_min_grade``: per dataset name."""
    from pathlib import Path

    return [
        {"name": Path(q).parent.name, "queries": pd.read_parquet(q), "qrels": pd.read_parquet(r),
         "candidates": pd.read_parquet(c), "docs": pd.read_parquet(d),
         "relevant_min_grade": relevant_min_grade[Path(q).parent.name]}
        for q, r, c, d in zip(queries, qrels, candidates, docs)
    ]


def save_teacher_scores(path, scores: dict[tuple[str, str], float], provenance: dict | None = None) -> None:
    """``teacher_scores.parquet``: one row (qid, doc_id, score) per training pair, provenance in its metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = pd.DataFrame([(q, d, s) for (q, d), s in scores.items()], columns=["qid", "doc_id", "score"])
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = {**(table.schema.metadata or {}), b"irneurons.provenance": json.dumps(provenance or {}).encode()}
    pq.write_table(table.replace_schema_metadata(meta), path)


def load_teacher_scores(path) -> dict[tuple[str, str], float]:
    frame = pd.read_parquet(path)
    return {(q, d): float(s) for q, d, s in zip(frame["qid"], frame["doc_id"], frame["score"])}
