"""Re-rank a dataset's test queries (first-stage top-depth) with each selected unit set zeroed in turn (or none:
the unpruned reference); per-set, per-query metrics and pruned-scoring throughput to JSON. All sets of a job
(e.g. R random sets) share one model load and one tokenisation."""

import json
import sys
import time

import pandas as pd

from irneurons.rankers import encoding
from irneurons.retrieval import evaluation as evaluate
from irneurons.rankers import parts
from irneurons.study import pruning as prune
from irneurons.units.unitsets import UnitSet
from irneurons.workflow.jobs import load_job_model
from irneurons.workflow.provenance import setup_logging, stamp

setup_logging(snakemake.log[0])
wc, opts = snakemake.wildcards, snakemake.params.rerank
cand = pd.read_parquet(snakemake.input.scores, columns=["qid", "doc_id", "rank"])
cand = cand[cand["rank"] <= snakemake.params.depth].reset_index(drop=True)
qtext = pd.read_parquet(snakemake.input.queries).set_index("qid")["text"]
dtext = pd.read_parquet(snakemake.input.docs).set_index("doc_id")["text"]
qrels = pd.read_parquet(snakemake.input.qrels)
qrels = evaluate.qrels_dict(qrels[qrels["qid"].isin(set(cand["qid"]))])
selection, chosen, part = None, [UnitSet()], None
if "units" in snakemake.input.keys():
    with open(snakemake.input.units) as fh:
        selection = json.load(fh)
    chosen = UnitSet.parse_all(snakemake.input.units)  # a hand-edited file: one-line UnitError
    if wc.target.startswith("ffn-"):
        part = parts.PART_NAMES.index(wc.target.split("-", 1)[1])
net, tokenizer, ref, device, num = load_job_model(snakemake, bf16=opts.get("bf16", "auto"))
unit_sets = [units.check(net).as_dict() for units in chosen]  # units the model lacks: one-line UnitError
trunc = encoding.truncation_record(tokenizer, qtext[cand["qid"]].unique(), ref["max_length"])
start = time.perf_counter()
all_scores = prune.pruned_scores_many(
    net, tokenizer, qtext[cand["qid"]].tolist(), dtext[cand["doc_id"]].tolist(), unit_sets, part=part,
    target=ref["target"], max_length=ref["max_length"], batch_size=opts.get("batch_size", 64), bf16=num["bf16"],
    progress=True,
)
seconds = time.perf_counter() - start
sets = []
for scores in all_scores:
    per_query = evaluate.per_query_metrics(evaluate.run_dict(cand.assign(score=scores), "score"), qrels,
                                           **snakemake.params.eval_opts)
    sets.append({"mean": evaluate.summarise(per_query), "per_query": per_query.to_dict(orient="index")})
count = len(selection["sets"][0]) if selection else 0
out = {
    "dataset": wc.dataset, "target": getattr(wc, "target", None), "scheme": getattr(wc, "scheme", None),
    "strategy": getattr(wc, "strategy", "unpruned"), "fraction": float(getattr(wc, "fraction", 0.0)),
    "count": count, "n_sets": len(sets), "depth": snakemake.params.depth, "pairs": len(cand), "seconds": seconds,
    "truncated_queries": trunc["truncated_queries"],
    "pairs_per_s": len(cand) * len(sets) / seconds, "sets": sets,
    "per_layer": selection.get("per_layer") if selection else None,
    "provenance": stamp(snakemake.config, snakemake.params.seed, device=str(device), numerics=num),
}
if len(sets) == 1:
    out.update(mean=sets[0]["mean"], per_query=sets[0]["per_query"])
with open(snakemake.output.result, "w") as fh:
    json.dump(out, fh, indent=1)
means = ", ".join(f"{s['mean']['ndcg@10']:.4f}" for s in sets[:5]) + (" ..." if len(sets) > 5 else "")
print(f"{out['strategy']} {len(sets)} set(s) of {count} units: nDCG@10 {means} "
      f"({len(cand)} pairs per set, {out['pairs_per_s']:.1f} pairs/s)", file=sys.stderr)
