"""Main model vs companion: nDCG@10 side by side, overlap of their top neuron sets, per-layer figure."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from irneurons.study import comparison as compare
from irneurons.workflow.provenance import setup_logging

setup_logging(snakemake.log[0])
p = snakemake.params
cols = ["unit_type", "layer", "unit", "part", "class", "mean", "std", "n", "absact_mean"]
main = {d: pd.read_parquet(f, columns=cols) for d, f in zip(p.datasets, snakemake.input.main)}
comp = {d: pd.read_parquet(f, columns=cols) for d, f in zip(p.datasets, snakemake.input.companion)}
table = compare.overlap_table(main, comp, p.fractions, p.score, seed=p.seed)
table.to_csv(snakemake.output.csv, index=False)
name_a, name_b = (f"{n} ({k})" for n, k in zip(p.names, p.kinds))
ndcg = compare.ndcg_table(pd.read_csv(snakemake.input.main_baseline), pd.read_csv(snakemake.input.companion_baseline),
                          name_a, name_b)
with open(snakemake.output.md, "w") as fh:
    fh.write(f"# {name_a} vs {name_b}\n\n## nDCG@10 re-ranking the same BM25 candidates\n\n")
    fh.write(ndcg.to_markdown(index=False, floatfmt=".3f") + "\n\n## Top neuron sets\n\n")
    fh.write("Jaccard of the two models' top sets (selection score of `pruning.score`); nulls: uniform random sets "
             "(chance) and random sets with the companion set's per-layer counts (layer-matched, 200 draws, p = "
             "(1 + #≥)/(R + 1)); Spearman over all units. layers_a / layers_b: units per layer.\n\n")
    fh.write(table.to_markdown(index=False, floatfmt=".3f") + "\n")
ffn = table[(table["unit_type"] == "ffn") & (table["fraction"] == min(p.fractions["ffn"]))]
fig, axes = plt.subplots(1, len(ffn), figsize=(4.5 * len(ffn), 3.2), squeeze=False)
for ax, (_, row) in zip(axes[0], ffn.iterrows()):
    a = [int(x) for x in row["layers_a"].split()]
    b = [int(x) for x in row["layers_b"].split()]
    xs = range(len(a))
    ax.bar([x - 0.2 for x in xs], a, width=0.4, label=name_a)
    ax.bar([x + 0.2 for x in xs], b, width=0.4, label=name_b)
    ax.set_title(f"{row['dataset']}: top {row['k']} FFN, J = {row['jaccard']:.2f} (chance {row['chance_jaccard']:.3f})",
                 fontsize=9)
    ax.set_xlabel("layer")
    ax.set_ylabel("neurons in the top set")
axes[0][0].legend(fontsize=7)
fig.tight_layout()
fig.savefig(snakemake.output.figure, dpi=p.dpi)
