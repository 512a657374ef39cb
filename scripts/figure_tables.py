"""Tables behind the neuron figures: per-layer counts of each scheme's top set (per class and token part) and
the pairwise Jaccard overlap of the schemes' top sets."""

import pandas as pd

from irneurons.study import aggregate
from irneurons.figures import tables as figure_data
from irneurons.study import selection as select
from irneurons.workflow.provenance import setup_logging

setup_logging(snakemake.log[0])
p = snakemake.params
cols = ["unit_type", "layer", "unit", "part", "class", "mean", "absact_mean"]
tables = {d: pd.read_parquet(path, columns=cols) for d, path in zip(p.datasets, snakemake.input.tables)}
schemes = select.default_schemes(p.roles)
score = select.ScoreOptions.from_config(p.score)  # sign and fusion normalisation; classes and parts per table
layers, overlap = [], []
for unit_type, fraction in p.fractions.items():
    layers.append(figure_data.layer_distribution_table(tables, p.roles, schemes, [unit_type], fraction, score=score))
    fused = [s for s in schemes if s.startswith("fusion-all")]  # per part: the fusion over all datasets only
    parts = [x for x in aggregate.PARTS if x not in ("pad", "total")]
    layers.append(figure_data.layer_distribution_table(tables, p.roles, fused, [unit_type], fraction,
                                                       classes=["relevant"], parts=parts, score=score))
    overlap.append(figure_data.overlap_table(tables, p.roles, schemes, unit_type, fraction, p.score))
pd.concat(layers).to_csv(snakemake.output.layers, index=False)
pd.concat(overlap).to_csv(snakemake.output.overlap, index=False)
