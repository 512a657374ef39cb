"""Fine-tuning recipes compared (not a test): nDCG@10 of the fine-tuned cross-encoder on both collections, steps
and time, in one run, with BM25 and the distillation teacher (the zero-shot bi-encoder) beside them.

Every recipe starts from the same weights and seed and trains on the same in-domain data the workflow uses
(Cranfield's train queries plus title → body pseudo-queries; Vaswani stays zero-shot); evaluation re-ranks each
test query's first-stage candidates (Cranfield top-100, Vaswani top-50), paired t-test against BM25.

    python benchmarks/bench_finetune.py --data results/default/data --threads 2
    python benchmarks/bench_finetune.py --recipes contrastive-500,distill_positives-200 --out /tmp/recipes.json
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from irneurons.numerics import resolve_bf16
from irneurons.rankers import loading as M
from irneurons.rankers.options import ScoringOptions
from irneurons.rankers.scoring import score_pairs
from irneurons.retrieval import evaluation as E
from irneurons.retrieval import finetune as FT
from irneurons.study.statistics import paired_tests


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        name = next(l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name"))
        flags = next(l.split(":", 1)[1].split() for l in out.splitlines() if l.startswith("Flags"))
        isa = [f for f in flags if f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")]
        return f"{name} ({', '.join(isa)})"
    except Exception:  # not Linux
        return platform.processor()


def load_tables(data: Path, name: str) -> dict:
    """The workflow's tables of one dataset (``<data>/<name>/*.parquet``), as fine-tuning reads them."""
    d = data / name
    paths = [[d / f"{table}.parquet"] for table in ("queries", "qrels", "candidates", "docs")]
    return FT.training_tables(*paths, {name: 1})[0]


def held_out_candidates(t: dict) -> pd.DataFrame:
    """The test queries' first-stage candidates (the candidates file holds the dataset's configured depth)."""
    test = set(t["queries"].loc[t["queries"]["split"] == "test", "qid"])
    return t["candidates"][t["candidates"]["qid"].isin(test)].reset_index(drop=True)


def evaluate(net, tok, t: dict, opts: ScoringOptions) -> tuple[pd.Series, pd.Series]:
    """Per-query nDCG@10 of the model and of BM25 on the test queries."""
    cand = held_out_candidates(t)
    q = t["queries"].set_index("qid")["text"]
    d = t["docs"].set_index("doc_id")["text"]
    scores = score_pairs(net, tok, q[cand["qid"]].tolist(), d[cand["doc_id"]].tolist(), opts)
    qrels = E.qrels_dict(t["qrels"][t["qrels"]["qid"].isin(set(cand["qid"]))])
    model = E.per_query_metrics(E.run_dict(cand.assign(score=scores)), qrels)["ndcg@10"]
    bm25 = E.per_query_metrics(E.run_dict(cand.assign(score=cand["score"])), qrels)["ndcg@10"]
    return model, bm25


def row(name: str, evals: dict, **extra) -> dict:
    out = {"recipe": name, **extra}
    for ds, (model, bm25) in evals.items():
        t = paired_tests(model, bm25)
        out.update({f"{ds}": t["mean_a"], f"{ds}_bm25": t["mean_b"], f"{ds}_delta": t["delta"], f"{ds}_p": t["t_p"]})
    return out


RECIPES = {  # name → FinetuneConfig overrides (on top of the workflow's defaults below)
    "contrastive": dict(loss="contrastive"),
    "distill": dict(loss="distill"),
    "distill_positives": dict(loss="distill_positives"),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("results/default/data"))
    ap.add_argument("--model", default=M.PYPI_MINILM)
    ap.add_argument("--recipes", default="contrastive-500,distill-200,distill_positives-200",
                    help="comma-separated RECIPE-STEPS[@LR_ENCODER]; recipes: " + ", ".join(RECIPES))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pseudo-queries", type=int, default=1000)
    ap.add_argument("--temperature", type=float, default=0.05)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = M.resolve_device()
    bf16 = resolve_bf16("auto", device)
    print(f"CPU: {cpu_name()}; device {device}, threads {torch.get_num_threads()}, bf16 {bf16}", flush=True)
    cran, vas = load_tables(args.data, "cranfield"), load_tables(args.data, "vaswani")
    base = FT.FinetuneConfig(groups_per_step=2, group_size=8, lr_encoder=5e-5, lr_head=1e-3, warmup_steps=30,
                             max_length=128, bf16=bf16, seed=0, pseudo_queries=args.pseudo_queries,
                             temperature=args.temperature)
    queries, docs, positives, pools = FT.training_data([cran], base.group_size, base.pseudo_queries, base.seed)
    opts = ScoringOptions(max_length=128, batch_size=32, bf16=bf16)
    start = time.perf_counter()
    teacher_net, teacher_tok = M.load_ranker(args.model, "bi_encoder", device=device)
    pairs = FT.teacher_pairs(positives, pools)
    teacher = FT.teacher_scores(teacher_net, teacher_tok, queries, docs, pairs, opts)
    teacher_seconds = time.perf_counter() - start
    teacher_evals = {"cranfield": evaluate(teacher_net, teacher_tok, cran, opts),
                     "vaswani": evaluate(teacher_net, teacher_tok, vas, opts)}
    rows = [row("bm25", {ds: (bm25, bm25) for ds, (_, bm25) in teacher_evals.items()}),
            row("teacher (bi-encoder, zero-shot)", teacher_evals, steps=0, seconds=teacher_seconds,
                pairs_scored=len(pairs))]
    print(f"teacher: {len(pairs)} training pairs scored in {teacher_seconds:.1f} s", flush=True)
    del teacher_net
    for spec in args.recipes.split(","):
        name, rest = spec.split("-", 1)
        steps, *lr = rest.split("@")
        cfg = replace(base, steps=int(steps), **RECIPES[name], **({"lr_encoder": float(lr[0])} if lr else {}))
        net, tok = M.load_cross_encoder(args.model, num_labels=1, device=device, seed=cfg.seed)
        info = FT.finetune(net, tok, FT.TrainingData(queries, docs, positives, pools), cfg, progress=False,
                           teacher=None if cfg.loss == "contrastive" else teacher)
        r = row(spec, {"cranfield": evaluate(net, tok, cran, opts), "vaswani": evaluate(net, tok, vas, opts)},
                steps=info["steps_done"], seconds=info["seconds"], s_per_step=info["seconds"] / info["steps_done"],
                loss_last50=info["loss_last50"])
        rows.append(r)
        print(json.dumps(r), flush=True)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    if args.out:
        args.out.write_text(json.dumps({"cpu": cpu_name(), "threads": args.threads, "bf16": bf16, "rows": rows},
                                       indent=1))


if __name__ == "__main__":
    main()
