"""Per-layer distribution of the selected units (per scheme and class; per token part)."""

import pandas as pd

from irneurons.figures import plots
from irneurons.workflow.provenance import setup_logging

setup_logging(snakemake.log[0])
table = pd.read_csv(snakemake.input.layers)
plots.layer_distribution(table, snakemake.output.layers, dpi=snakemake.params.dpi)
plots.part_distribution(table, snakemake.output.parts, dpi=snakemake.params.dpi)
