"""Re-rank a dataset's test candidates with the cross-encoder; save scores and TREC runs (BM25, CE, fusion)."""

import json
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from irneurons.retrieval import rerank
from irneurons.rankers import encoding
from irneurons.retrieval import evaluation as evaluate
from irneurons.workflow.jobs import load_job_model
from irneurons.workflow.provenance import setup_logging

setup_logging(snakemake.log[0])
queries = pd.read_parquet(snakemake.input.queries)
test = queries[queries["split"] == "test"]
cand = pd.read_parquet(snakemake.input.candidates)
cand = cand[cand["qid"].isin(set(test["qid"]))]
opts = snakemake.params.rerank
# numerics: logged; stamped into the scores' metadata
net, tokenizer, ref, device, num = load_job_model(snakemake, bf16=opts.get("bf16", "auto"))
# queries over model.max_query_share of max_length are cut (as everywhere); counted, logged and stamped too
trunc = encoding.truncation_record(tokenizer, test.loc[test["qid"].isin(set(cand["qid"])), "text"], ref["max_length"])
print(f"test queries: {encoding.truncation_message(trunc)}", file=sys.stderr)
scored = rerank.rerank_candidates(
    net, tokenizer, cand, test, pd.read_parquet(snakemake.input.docs), target=ref["target"],
    max_length=ref["max_length"], batch_size=opts.get("batch_size", 64), bf16=num["bf16"],
    fusion_weight=opts.get("fusion_weight", 0.5),
)
table = pa.Table.from_pandas(scored, preserve_index=False)
meta = {**(table.schema.metadata or {}), b"irneurons.numerics": json.dumps(num).encode(),
        b"irneurons.truncation": json.dumps(trunc).encode()}
pq.write_table(table.replace_schema_metadata(meta), snakemake.output.scores)
for system, path in (("first_stage", snakemake.output.bm25), ("cross_encoder", snakemake.output.ce), ("fusion", snakemake.output.fusion)):
    evaluate.write_trec_run(scored, path, tag=system, score_col=system)
