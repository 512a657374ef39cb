"""One markdown page with the study's tables: claims, baseline, pruning summary, stability, OOD neurons."""

import pandas as pd

from irneurons.retrieval import evaluation as evaluate
from irneurons.workflow.provenance import setup_logging

setup_logging(snakemake.log[0])
i = snakemake.input
stability = pd.read_csv(i.stability)
cols = ["scheme", "unit_type", "class", "fraction", "k", "queries_per_half", "jaccard", "chance", "null_mean",
        "null_p95", "p_perm", "spearman"]
sections = [
    ("Claims", open(i.claims).read()),
    ("Baseline: BM25 vs cross-encoder (test queries)", open(i.baseline).read()),
    ("Pruning", open(i.pruning).read()),
    ("Query-level split-half stability of the top sets (vs chance and within-query label permutations)",
     evaluate.to_markdown(stability[[c for c in cols if c in stability]], digits=3)),
    ("OOD neurons: size and layers", evaluate.to_markdown(pd.read_csv(i.ood))),
]
with open(snakemake.output.summary, "w") as fh:
    fh.write("\n\n".join(f"## {title}\n\n{body.strip()}" for title, body in sections) + "\n")
