"""Re-rank a dataset's test candidates with the cross-encoder; save scores and TREC runs (BM25, CE, fusion)."""

import pandas as pd

from irneurons import evaluate, model
from irneurons.provenance import setup_logging

setup_logging(snakemake.log[0])
ref = model.read_model_ref(snakemake.input.model)
queries = pd.read_parquet(snakemake.input.queries)
test = queries[queries["split"] == "test"]
cand = pd.read_parquet(snakemake.input.candidates)
cand = cand[cand["qid"].isin(set(test["qid"]))]
net, tokenizer = model.load_from_ref(ref, model.pick_device(snakemake.threads))
opts = snakemake.params.rerank
scored = model.rerank_candidates(
    net, tokenizer, cand, test, pd.read_parquet(snakemake.input.docs), target=ref["target"],
    max_length=ref["max_length"], batch_size=opts.get("batch_size", 64), bf16=opts.get("bf16", False),
    fusion_weight=opts.get("fusion_weight", 0.5),
)
scored.to_parquet(snakemake.output.scores, index=False)
for system, path in (("first_stage", snakemake.output.bm25), ("cross_encoder", snakemake.output.ce), ("fusion", snakemake.output.fusion)):
    evaluate.write_trec_run(scored, path, tag=system, score_col=system)
