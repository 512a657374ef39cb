"""Jaccard heat-maps of the schemes' top sets (FFN neurons and heads), chance level marked."""

import pandas as pd

from irneurons.figures import plots
from irneurons.workflow.provenance import setup_logging

setup_logging(snakemake.log[0])
table = pd.read_csv(snakemake.input.overlap)
for unit_type, path in (("ffn", snakemake.output.ffn), ("head", snakemake.output.head)):
    plots.overlap_heatmap(table[table["unit_type"] == unit_type], path, dpi=snakemake.params.dpi)
