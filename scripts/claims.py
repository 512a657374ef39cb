"""The claims table: one row per (claim, collection) with its test, effect, p / CI and a computed verdict."""

import pandas as pd

from irneurons.study import claims as study
from irneurons.workflow.provenance import setup_logging

setup_logging(snakemake.log[0])
i = snakemake.input


def read(path):
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:  # e.g. no OOD scheme in the grid
        return pd.DataFrame()


claims = study.claims_table(read(i.pruning), read(i.stability), read(i.ood), fraction=float(snakemake.params.fraction))
claims.to_csv(snakemake.output.csv, index=False)
with open(snakemake.output.md, "w") as fh:
    fh.write(study.claims_markdown(claims))
print(claims[["claim", "collection", "verdict"]].to_string(index=False))
