"""Merge a dataset's NIG shards into the long per-unit table (mean, std, n per unit × part × class), the
per-split-half means (stability) and the per-pair completeness table."""

import sys

import pandas as pd

from irneurons import aggregate
from irneurons.provenance import setup_logging

setup_logging(snakemake.log[0])
halves = aggregate.assign_halves(pd.read_parquet(snakemake.input.pairs), snakemake.params.seed)
table, completeness, half_table = aggregate.aggregate_shards(snakemake.input.shards, halves)
table.to_parquet(snakemake.output.table, index=False)
half_table.to_parquet(snakemake.output.halves, index=False)
completeness.to_csv(snakemake.output.completeness, index=False)
err = completeness["ffn_cut_relerr_max"]
print(f"{completeness.shape[0]} pairs; max-over-layers relative cut error: median {err.median():.2e}, "
      f"90th percentile {err.quantile(0.9):.2e}", file=sys.stderr)
