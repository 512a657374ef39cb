"""NIG of one shard of attribution pairs; writes the shard atomically (a killed job leaves no partial file)."""

import sys

import numpy as np
import pandas as pd

from irneurons import model, nig
from irneurons.provenance import setup_logging, stamp

setup_logging(snakemake.log[0])
shard = int(snakemake.wildcards.shard)
pairs = pd.read_parquet(snakemake.input.pairs)
pairs = pairs[pairs["shard"] == shard]
queries = pd.read_parquet(snakemake.input.queries).set_index("qid")["text"]
docs = pd.read_parquet(snakemake.input.docs).set_index("doc_id")["text"]
ref = model.read_model_ref(snakemake.input.model)
opts = snakemake.params.nig
meta = stamp(snakemake.config, snakemake.params.seed, dataset=snakemake.wildcards.dataset, shard=shard,
             pair_ids=pairs["pair_id"].tolist(), nig=opts, model=ref["source"])
if pairs.empty:  # the dataset had fewer pairs than per_class asks for: this shard stays empty
    nig.save_shard(snakemake.output.shard, {}, meta)
    sys.exit(0)
device = model.pick_device(snakemake.threads)
net, tokenizer = model.load_from_ref(ref, device)
result = nig.attribute(
    net, tokenizer, queries[pairs["qid"]].tolist(), docs[pairs["doc_id"]].tolist(), pair_ids=pairs["pair_id"].tolist(),
    baseline=opts["baseline"], target=ref["target"], estimator=opts["estimator"], steps=opts["steps"],
    max_length=ref["max_length"], budget=opts["budget"], device=device, bf16=opts["bf16"],
)
result["label"] = pairs["label"].to_numpy()
nig.save_shard(snakemake.output.shard, result, {**meta, "device": str(device)})
print(f"shard {shard}: {len(pairs)} pairs; median relative cut error: FFN {np.median(result['ffn_cut_relerr']):.2e}, "
      f"heads {np.median(result['heads_cut_relerr']):.2e}", file=sys.stderr)
