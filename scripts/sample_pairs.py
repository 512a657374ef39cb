"""Relevant / non-relevant (query, doc) pairs of the attribution queries, seeded, with a shard index."""

import sys

import pandas as pd

from irneurons.retrieval import datasets as data
from irneurons.workflow.provenance import setup_logging

setup_logging(snakemake.log[0])
queries = pd.read_parquet(snakemake.input.queries)
attribution = queries.loc[queries["split"] == "attribution", "qid"]
if attribution.empty:
    raise data.DataError(f"dataset '{snakemake.wildcards.dataset}': no attribution queries (split.attribution is 0)")
pairs = data.sample_pairs(
    pd.read_parquet(snakemake.input.candidates),
    pd.read_parquet(snakemake.input.qrels),
    attribution,
    snakemake.params.per_class,
    snakemake.params.seed,
    snakemake.params.shard_size,
    relevant_min_grade=snakemake.params.relevant_min_grade,
)
pairs.to_parquet(snakemake.output.pairs, index=False)
print(f"{len(pairs)} pairs ({pairs['label'].sum()} relevant) in {pairs['shard'].nunique()} shards", file=sys.stderr)
