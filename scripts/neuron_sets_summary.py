"""Split-half stability of the top sets (vs chance) and the OOD-neuron sets' size and layer distribution."""

import pandas as pd

from irneurons import select
from irneurons.provenance import setup_logging

setup_logging(snakemake.log[0])
p = snakemake.params
cols = ["unit_type", "layer", "unit", "part", "class", "mean", "absact_mean"]
tables = {d: pd.read_parquet(path, columns=cols) for d, path in zip(p.datasets, snakemake.input.tables)}
halves = pd.concat([pd.read_parquet(path).assign(dataset=d) for d, path in zip(p.datasets, snakemake.input.halves)])
select.stability_table(halves, p.roles, p.fractions, p.score).to_csv(snakemake.output.stability, index=False)
select.ood_table(tables, p.roles, p.fractions, p.score).to_csv(snakemake.output.ood, index=False)
