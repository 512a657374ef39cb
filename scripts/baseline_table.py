"""One table: BM25 vs the re-ranker (its row labelled by its kind) vs fusion per dataset (means, deltas vs BM25,
paired-test p-values)."""

import json

from irneurons.rankers import loading as model
from irneurons.retrieval import evaluation as evaluate
from irneurons.workflow.provenance import setup_logging

setup_logging(snakemake.log[0])
records = []
for path in snakemake.input.metrics:
    with open(path) as fh:
        records.append(json.load(fh))
kind = evaluate.model_kind(model.read_model_ref(snakemake.input.model))  # the model row's label: its kind
table = evaluate.baseline_table(records, kind=kind)
table.to_csv(snakemake.output.csv, index=False)
with open(snakemake.output.md, "w") as fh:
    fh.write(evaluate.to_markdown(table) + "\n")
