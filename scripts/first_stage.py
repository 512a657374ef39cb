"""First-stage candidates (scoreddocs or BM25) for every query, and the texts of every doc needed later."""

import sys

import pandas as pd

from irneurons.retrieval import datasets as data
from irneurons.retrieval import firststage
from irneurons.workflow.provenance import setup_logging

setup_logging(snakemake.log[0])
data.seed_ir_datasets_home(snakemake.params.cache["cache"], snakemake.params.cache["seed_dir"])
spec = data.DatasetSpec.from_config(snakemake.wildcards.dataset, snakemake.params.spec)
queries = pd.read_parquet(snakemake.input.queries)
qrels = pd.read_parquet(snakemake.input.qrels)
use_scoreddocs = spec.first_stage == "scoreddocs" or (
    spec.first_stage == "auto" and not spec.is_local and firststage.has_scoreddocs(spec.source)
)
if use_scoreddocs:
    cand = firststage.scoreddocs_candidates(spec.source, queries["qid"], spec.depth)
    needed = set(cand["doc_id"]) | set(qrels["doc_id"])
    docs = data.load_collection(spec, doc_ids=needed).docs
elif spec.first_stage == "dense":
    from irneurons.rankers import loading as model
    from irneurons.workflow.jobs import job_device

    docs = data.load_collection(spec).docs
    net, tokenizer = model.load_ranker(spec.dense_model, "bi_encoder", device=job_device(snakemake))
    cand = firststage.dense_candidates(net, tokenizer, docs, queries, spec.depth)
    docs = docs[docs["doc_id"].isin(set(cand["doc_id"]) | set(qrels["doc_id"]))]
else:
    docs = data.load_collection(spec).docs
    cand = firststage.bm25_candidates(docs, queries, spec.depth)
    docs = docs[docs["doc_id"].isin(set(cand["doc_id"]) | set(qrels["doc_id"]))]
cand.to_parquet(snakemake.output.candidates, index=False)
docs.to_parquet(snakemake.output.docs, index=False)
recall = firststage.recall_at_depth(cand, qrels)
print(f"{spec.name}: {'scoreddocs' if use_scoreddocs else spec.first_stage if spec.first_stage == 'dense' else 'BM25'} top-{spec.depth}, {len(cand)} candidates, recall {recall:.3f}", file=sys.stderr)
