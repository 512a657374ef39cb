"""Completeness of the NIG estimates: per-pair cut errors and F(x) − F(x') vs the cut sum."""

import pandas as pd

from irneurons.figures import plots
from irneurons.workflow.provenance import setup_logging

setup_logging(snakemake.log[0])
p = snakemake.params
tables = {f"{d} ({p.label})": pd.read_csv(path) for d, path in zip(p.datasets, snakemake.input.tables)}
plots.completeness(tables, snakemake.output.figure, dpi=p.dpi)
