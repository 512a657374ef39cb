"""Input-level IG (word embeddings) of a few example attribution pairs, for the token view."""

import pandas as pd

from irneurons import model, tokens
from irneurons.provenance import setup_logging

setup_logging(snakemake.log[0])
p = snakemake.params
examples = tokens.example_pairs(pd.read_parquet(snakemake.input.pairs), p.examples)
queries = pd.read_parquet(snakemake.input.queries).set_index("qid")["text"]
docs = pd.read_parquet(snakemake.input.docs).set_index("doc_id")["text"]
ref = model.read_model_ref(snakemake.input.model)
net, tokenizer = model.load_from_ref(ref, "cpu" if model.pick_device(snakemake.threads) == "cpu" else "cuda")
table = tokens.token_attributions(
    net, tokenizer, queries[examples["qid"]].tolist(), docs[examples["doc_id"]].tolist(),
    pair_ids=examples["pair_id"].tolist(), labels=examples["label"].tolist(), baseline=p.baseline,
    target=ref["target"], steps=p.steps, max_length=ref["max_length"],
)
table.to_parquet(snakemake.output.tokens, index=False)
