"""The OOD-neuron sets' size and layer distribution per unit type and fraction."""

import pandas as pd

from irneurons.study import selection as select
from irneurons.workflow.provenance import setup_logging

setup_logging(snakemake.log[0])
p = snakemake.params
cols = ["unit_type", "layer", "unit", "part", "class", "mean", "std", "n", "absact_mean"]
tables = {d: pd.read_parquet(path, columns=cols) for d, path in zip(p.datasets, snakemake.input.tables)}
select.ood_table(tables, p.roles, p.fractions, p.score).to_csv(snakemake.output.ood, index=False)
