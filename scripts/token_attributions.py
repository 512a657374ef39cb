"""Input-level IG (word embeddings) of a few example attribution pairs, for the token view."""

import json
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from irneurons.rankers import encoding
from irneurons.rankers import loading as model
from irneurons.attribution import tokens
from irneurons.workflow.provenance import setup_logging

setup_logging(snakemake.log[0])
p = snakemake.params
examples = tokens.example_pairs(pd.read_parquet(snakemake.input.pairs), p.examples)
queries = pd.read_parquet(snakemake.input.queries).set_index("qid")["text"]
docs = pd.read_parquet(snakemake.input.docs).set_index("doc_id")["text"]
ref = model.read_model_ref(snakemake.input.model)
net, tokenizer = model.load_from_ref(ref, "cpu" if model.pick_device(snakemake.threads) == "cpu" else "cuda")
trunc = encoding.truncation_record(tokenizer, queries[examples["qid"]], ref["max_length"])
print(f"example queries: {encoding.truncation_message(trunc)}", file=sys.stderr)
table = tokens.token_attributions(
    net, tokenizer, queries[examples["qid"]].tolist(), docs[examples["doc_id"]].tolist(),
    pair_ids=examples["pair_id"].tolist(), labels=examples["label"].tolist(), baseline=p.baseline,
    target=ref["target"], steps=p.steps, max_length=ref["max_length"],
)
arrow = pa.Table.from_pandas(table, preserve_index=False)
meta = {**(arrow.schema.metadata or {}), b"irneurons.truncation": json.dumps(trunc).encode()}
pq.write_table(arrow.replace_schema_metadata(meta), snakemake.output.tokens)
