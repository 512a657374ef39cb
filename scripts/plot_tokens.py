"""Token view: coloured tokens by input-level IG (PNG and HTML)."""

import pandas as pd

from irneurons.figures import plots
from irneurons.workflow.provenance import setup_logging

setup_logging(snakemake.log[0])
plots.token_view(pd.read_parquet(snakemake.input.tokens), snakemake.output.png, snakemake.output.html,
                 dpi=snakemake.params.dpi)
