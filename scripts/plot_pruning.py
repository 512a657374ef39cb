"""Pruning curves: ΔnDCG@10 vs pruned fraction per strategy and dataset."""

import pandas as pd

from irneurons.figures import plots
from irneurons.workflow.provenance import setup_logging

setup_logging(snakemake.log[0])
plots.pruning_curves(pd.read_csv(snakemake.input.table), snakemake.output.figure, dpi=snakemake.params.dpi)
