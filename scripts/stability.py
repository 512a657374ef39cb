"""Query-level split-half stability of the top sets of every dataset (and their fusion), per unit type, score
class and fraction, against chance and a within-query label-permutation null."""

from irneurons.study import stability
from irneurons.workflow.provenance import setup_logging

import pandas as pd

setup_logging(snakemake.log[0])
p = snakemake.params
n = p.shards_per_dataset
shards = {d: snakemake.input.shards[i * n:(i + 1) * n] for i, d in enumerate(p.datasets)}
pairs = {d: pd.read_parquet(path) for d, path in zip(p.datasets, snakemake.input.pairs)}
matrices = {ut: {d: stability.load_pairs_matrix(shards[d], pairs[d], ut) for d in p.datasets} for ut in p.fractions}
table = stability.stability_table(matrices, p.fractions, p.stability["classes"], n_splits=p.stability["splits"],
                                  n_permutations=p.stability["permutations"], seed=p.seed, standardise=p.standardise)
table.to_csv(snakemake.output.stability, index=False)
print(table[["scheme", "unit_type", "class", "fraction", "jaccard", "null_mean", "p_perm"]].to_string(index=False))
