"""Load a dataset (ir_datasets id or local BEIR folder); write queries with their split, and qrels with gains."""

import sys

from irneurons.retrieval import datasets as data
from irneurons.workflow.provenance import setup_logging

setup_logging(snakemake.log[0])
data.seed_ir_datasets_home(snakemake.params.cache["cache"], snakemake.params.cache["seed_dir"])
spec = data.DatasetSpec.from_config(snakemake.wildcards.dataset, snakemake.params.spec)
coll = data.load_collection(spec, doc_ids=set())  # docs are read by the first stage
split = spec.assign_splits(coll.queries["qid"])
queries = coll.queries[coll.queries["qid"].isin(split)].assign(split=lambda d: d["qid"].map(split))
qrels = coll.qrels[coll.qrels["qid"].isin(split)]
queries.to_parquet(snakemake.output.queries, index=False)
qrels.to_parquet(snakemake.output.qrels, index=False)
print(f"{spec.name}: {len(queries)} queries {queries['split'].value_counts().to_dict()}, {len(qrels)} qrels", file=sys.stderr)
