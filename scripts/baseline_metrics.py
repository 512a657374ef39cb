"""Per-query and mean metrics of BM25, the cross-encoder and their fusion; paired tests against BM25."""

import json

import pandas as pd

from irneurons.study import statistics
from irneurons.retrieval import evaluation as evaluate
from irneurons.workflow.provenance import setup_logging, stamp

setup_logging(snakemake.log[0])
scores = pd.read_parquet(snakemake.input.scores)
qrels = pd.read_parquet(snakemake.input.qrels)
qrels = evaluate.qrels_dict(qrels[qrels["qid"].isin(set(scores["qid"]))])
systems = ("first_stage", "cross_encoder", "fusion")
level = snakemake.params.relevant_min_grade  # the dataset's relevant_min_grade: binary measures count gain ≥ it
per_query = {s: evaluate.per_query_metrics(evaluate.run_dict(scores, s), qrels, relevance_level=level) for s in systems}
pd.concat(per_query, names=["system"]).to_csv(snakemake.output.per_query)
out = {"dataset": snakemake.wildcards.dataset, "n_queries": len(qrels), "relevance_level": level, "systems": {}}
for s in systems:
    tests = {m: statistics.paired_tests(per_query[s][m], per_query["first_stage"][m]) for m in per_query[s].columns}
    out["systems"][s] = {"mean": evaluate.summarise(per_query[s]), "vs_first_stage": tests}
out["provenance"] = stamp(snakemake.config, snakemake.params.seed)
with open(snakemake.output.metrics, "w") as fh:
    json.dump(out, fh, indent=1)
