"""Merge a dataset's NIG shards into the long per-unit table (mean, std, n per unit × part × class) and the
per-pair completeness table (stability works on the per-pair shards directly: rule stability)."""

import sys


from irneurons.study import aggregate
from irneurons.workflow.provenance import setup_logging

setup_logging(snakemake.log[0])
table, completeness = aggregate.aggregate_shards(snakemake.input.shards)
table.to_parquet(snakemake.output.table, index=False)
completeness.to_csv(snakemake.output.completeness, index=False)
err = completeness["ffn_cut_relerr_max"]
print(f"{completeness.shape[0]} pairs; max-over-layers relative cut error: median {err.median():.2e}, "
      f"90th percentile {err.quantile(0.9):.2e}", file=sys.stderr)
over = completeness[completeness["over_threshold"]]
print(f"{len(over)} pairs over nig.max_cut_relerr (median-over-layers FFN error): "
      + (", ".join(f"{p} ({e:.3g})" for p, e in zip(over["pair_id"], over["ffn_cut_relerr_median"])) or "none"),
      file=sys.stderr)
