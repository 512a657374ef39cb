"""All pruning results → the tidy table of tests (primary family + exploratory; csv), its markdown summary, and
the OOD contrast (Δ_ood − Δ_in with bootstrap CIs, vs the OOD set's null controls)."""

import json

from irneurons.study import claims as study
from irneurons.workflow.provenance import setup_logging

setup_logging(snakemake.log[0])


def load(path):
    with open(path) as fh:
        return json.load(fh)


unpruned = {rec["dataset"]: rec for rec in map(load, snakemake.input.unpruned)}
pruned = [load(p) for p in snakemake.input.pruned]
table = study.comparisons(unpruned, pruned)
table.to_csv(snakemake.output.csv, index=False)
with open(snakemake.output.md, "w") as fh:
    fh.write(study.summary_markdown(table, unpruned))
study.ood_contrast(unpruned, pruned, snakemake.params.roles, seed=snakemake.params.seed).to_csv(
    snakemake.output.ood, index=False)
