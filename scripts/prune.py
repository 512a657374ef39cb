"""Re-rank a dataset's test queries (first-stage top-depth) with the selected units zeroed (or none: the
unpruned reference); per-query metrics and pruned-scoring throughput to JSON."""

import json
import sys
import time

import pandas as pd

from irneurons import evaluate, model, nig, prune
from irneurons.provenance import setup_logging, stamp

setup_logging(snakemake.log[0])
wc, opts = snakemake.wildcards, snakemake.params.rerank
cand = pd.read_parquet(snakemake.input.scores, columns=["qid", "doc_id", "rank"])
cand = cand[cand["rank"] <= snakemake.params.depth].reset_index(drop=True)
qtext = pd.read_parquet(snakemake.input.queries).set_index("qid")["text"]
dtext = pd.read_parquet(snakemake.input.docs).set_index("doc_id")["text"]
qrels = pd.read_parquet(snakemake.input.qrels)
qrels = evaluate.qrels_dict(qrels[qrels["qid"].isin(set(cand["qid"]))])
selection, ffn, heads, part = None, [], [], None
if "units" in snakemake.input.keys():
    with open(snakemake.input.units) as fh:
        selection = json.load(fh)
    units = [tuple(u) for u in selection["units"]]
    ffn, heads = (units, []) if selection["unit_type"] == "ffn" else ([], units)
    if wc.target.startswith("ffn-"):
        part = nig.PART_NAMES.index(wc.target.split("-", 1)[1])
ref = model.read_model_ref(snakemake.input.model)
net, tokenizer = model.load_from_ref(ref, model.pick_device(snakemake.threads))
start = time.perf_counter()
cand["score"] = prune.pruned_scores(
    net, tokenizer, qtext[cand["qid"]].tolist(), dtext[cand["doc_id"]].tolist(), ffn=ffn, heads=heads, part=part,
    target=ref["target"], max_length=ref["max_length"], batch_size=opts.get("batch_size", 64),
    bf16=opts.get("bf16", False), progress=True,
)
seconds = time.perf_counter() - start
per_query = evaluate.per_query_metrics(evaluate.run_dict(cand, "score"), qrels)
out = {
    "dataset": wc.dataset, "target": getattr(wc, "target", None), "scheme": getattr(wc, "scheme", None),
    "strategy": getattr(wc, "strategy", "unpruned"), "fraction": float(getattr(wc, "fraction", 0.0)),
    "count": len(ffn) + len(heads), "depth": snakemake.params.depth, "pairs": len(cand), "seconds": seconds,
    "pairs_per_s": len(cand) / seconds, "mean": evaluate.summarise(per_query),
    "per_query": per_query.to_dict(orient="index"),
    "provenance": stamp(snakemake.config, snakemake.params.seed, device=str(next(net.parameters()).device)),
}
with open(snakemake.output.result, "w") as fh:
    json.dump(out, fh, indent=1)
print(f"{out['strategy']} {out['count']} units: nDCG@10 {out['mean']['ndcg@10']:.4f} "
      f"({len(cand)} pairs, {out['pairs_per_s']:.1f} pairs/s)", file=sys.stderr)
