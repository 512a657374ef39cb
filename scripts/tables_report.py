"""One markdown page with the study's tables: baseline, pruning summary, split-half stability, OOD neurons."""

import pandas as pd

from irneurons import evaluate
from irneurons.provenance import setup_logging

setup_logging(snakemake.log[0])
i = snakemake.input
sections = [
    ("Baseline: BM25 vs cross-encoder (test queries)", open(i.baseline).read()),
    ("Pruning", open(i.pruning).read()),
    ("Split-half stability of the top sets (Jaccard vs chance)", evaluate.to_markdown(pd.read_csv(i.stability))),
    ("OOD neurons: size and layers", evaluate.to_markdown(pd.read_csv(i.ood))),
]
with open(snakemake.output.summary, "w") as fh:
    fh.write("\n\n".join(f"## {title}\n\n{body.strip()}" for title, body in sections) + "\n")
