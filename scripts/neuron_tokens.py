"""Per-token conductance of every selected unit over a few attribution pairs per dataset and class, for the
neuron explorer's cards (explorer/neuron_tokens.json; schema: irneurons.figures.explorer.neuron_tokens_record)."""

import json
import logging
import os
import sys

import pandas as pd

from irneurons.rankers import encoding
from irneurons.figures import explorer
from irneurons.rankers import loading as model
from irneurons import numerics
from irneurons.attribution.conductance import NeuronConductance, NIGSettings
from irneurons.workflow.provenance import setup_logging, stamp
from irneurons.units.unitsets import unit_id

def write(record):
    tmp = f"{snakemake.output.json}.tmp"  # atomic: a killed job leaves no partial file
    with open(tmp, "w") as fh:
        json.dump(record, fh, allow_nan=False, separators=(",", ":"))
    os.replace(tmp, snakemake.output.json)
    logging.info("neuron tokens: wrote %d units x %d pairs", len(record["units"]), len(record["pairs"]))


setup_logging(snakemake.log[0])
inp, p = snakemake.input, snakemake.params
opts, per_class = p.nig, p.explorer["pairs_per_class"]
picked = []
for dataset, pairs_path, queries_path, docs_path in zip(p.datasets, inp.pairs, inp.queries, inp.docs):
    chosen = explorer.pick_pairs(pd.read_parquet(pairs_path), per_class)
    queries = pd.read_parquet(queries_path).set_index("qid")["text"]
    docs = pd.read_parquet(docs_path).set_index("doc_id")["text"]
    picked.append(chosen.assign(dataset=dataset, query=queries[chosen["qid"]].to_numpy(),
                                passage=docs[chosen["doc_id"]].to_numpy()))
pairs = pd.concat(picked, ignore_index=True)
units = [unit_id(*u) for u in explorer.selected_units(explorer.read_sets(inp.sets))]
ref = model.read_model_ref(inp.model)
meta = stamp(snakemake.config, snakemake.config["seed"], nig=opts, model=ref["source"], pairs_per_class=per_class,
             pair_ids=pairs["pair_id"].tolist())
logging.info("neuron tokens: %d units (%d ffn, %d heads) over %d pairs (%s)", len(units),
             sum(u.startswith("ffn:") for u in units), sum(u.startswith("head:") for u in units), len(pairs),
             ", ".join(f"{d}: {n}" for d, n in pairs.groupby("dataset", sort=False).size().items()))

if pairs.empty:  # explorer.pairs_per_class 0 (the explorer then does not ask for this file)
    write({"pairs": [], "units": {}, "provenance": meta})
    sys.exit(0)
device = model.pick_device(snakemake.threads)
net, tokenizer = model.load_from_ref(ref, device)
num = numerics.numerics_record(opts.get("bf16", "auto"), device)
meta["truncation"] = trunc = encoding.truncation_record(tokenizer, pairs["query"], ref["max_length"])
logging.info("neuron tokens queries: %s", encoding.truncation_message(trunc))
settings = NIGSettings.from_config(opts, target=ref["target"], bf16=num["bf16"])
nc = NeuronConductance(net, tokenizer, settings, max_length=ref["max_length"], device=device)
attr = nc.attribute(pairs["query"].tolist(), pairs["passage"].tolist(), per_token=True, units=units,
                    pair_ids=pairs["pair_id"].tolist(), allow_empty=True)  # as the attribute rule
logging.info("neuron tokens: %s", attr.completeness)  # reported, not enforced: a display
classes = ["relevant" if label == 1 else "non_relevant" for label in pairs["label"]]
meta["completeness"] = str(attr.completeness)
write(explorer.neuron_tokens_record(attr, pairs["dataset"].tolist(), classes,
                                    provenance={**meta, "device": str(device), "numerics": num}))
