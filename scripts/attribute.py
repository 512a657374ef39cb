"""NIG of one shard of attribution pairs; writes the shard atomically (a killed job leaves no partial file)."""

import sys

import numpy as np
import pandas as pd

from irneurons.attribution import completeness
from irneurons.attribution.conductance import NeuronConductance, NIGSettings
from irneurons.rankers import encoding
from irneurons.rankers import loading as model
from irneurons import numerics
from irneurons.attribution import shards
from irneurons.workflow.provenance import setup_logging, stamp

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
    shards.save_shard(snakemake.output.shard, {}, meta)
    sys.exit(0)
device = model.pick_device(snakemake.threads)
net, tokenizer = model.load_from_ref(ref, device)
num = numerics.numerics_record(opts.get("bf16", "auto"), device)
# queries over model.max_query_share of max_length are cut exactly as the re-ranker cuts them
meta["truncation"] = encoding.truncation_record(tokenizer, queries[pairs["qid"]], ref["max_length"])
meta["truncated_queries"] = meta["truncation"]["truncated_queries"]
print(f"shard {shard} queries: {encoding.truncation_message(meta['truncation'])}", file=sys.stderr)
settings = NIGSettings.from_config(opts, target=ref["target"], bf16=num["bf16"])
nc = NeuronConductance(net, tokenizer, settings, max_length=ref["max_length"], device=device)
# encoded as the re-ranker encodes them; empty texts are not refused here (the completeness check judges them)
enc = nc.encode(queries[pairs["qid"]].tolist(), docs[pairs["doc_id"]].tolist())
result = nc.attribute_encoded(enc, pair_ids=pairs["pair_id"].tolist(), progress=True).arrays
result["label"] = pairs["label"].to_numpy()
# Completeness enforced: pairs over nig.max_cut_relerr are listed in this log; a shard with more than
# nig.max_bad_share of them fails (one-line error naming the pairs). The check's numbers go into the metadata.
meta["completeness"] = check = completeness.check_completeness(
    result, pairs["pair_id"].tolist(), max_relerr=settings.max_cut_relerr, floor=settings.min_abs_delta_f,
    max_share=settings.max_bad_share, log=lambda line: print(f"over threshold: {line}", file=sys.stderr),
)
print(f"completeness: {check['n_over']} of {check['n_pairs']} pairs over nig.max_cut_relerr={check['max_cut_relerr']} "
      f"(share {check['bad_share']:.0%}, limit nig.max_bad_share={check['max_bad_share']}); median-over-layers FFN "
      f"relative cut error (|ΔF| floored at {check['min_abs_delta_f']}): "
      f"median {check['ffn_cut_relerr_median']['median']:.2e}, "
      f"max {check['ffn_cut_relerr_median']['max']:.2e}", file=sys.stderr)
shards.save_shard(snakemake.output.shard, result, {**meta, "device": str(device), "numerics": num})
print(f"shard {shard}: {len(pairs)} pairs; median relative cut error: FFN {np.median(result['ffn_cut_relerr']):.2e}, "
      f"heads {np.median(result['heads_cut_relerr']):.2e}", file=sys.stderr)
