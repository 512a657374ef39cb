# One study: one model over the config's datasets (data -> model -> attribution -> neurons -> pruning -> figures).
# The Snakefile includes it for the main model and, as a module, once more for config `companion` (if set).


include: "common.smk"
include: "data.smk"
include: "model.smk"
include: "attribution.smk"
include: "neurons.smk"
include: "pruning.smk"
include: "figures.smk"
include: "explorer.smk"


STUDY_OUTPUTS = [
    f"{RESULTS}/tables/baseline.md",
    *expand(f"{RESULTS}/neurons/{{dataset}}.parquet", dataset=DATASETS),
    f"{RESULTS}/tables/pruning.md",
    f"{RESULTS}/tables/stability.csv",
    f"{RESULTS}/tables/ood_neurons.csv",
    f"{RESULTS}/tables/claims.md",
    rules.plot_layers.output.layers,
    rules.plot_overlap.output.ffn,
    rules.plot_pruning.output.figure,
    rules.plot_completeness.output.figure,
    rules.tables_report.output.summary,
    *(expand(rules.plot_tokens.output.png, dataset=DATASETS) if FIG["token_examples"] else []),
    rules.explorer.output.html,
]


rule study:
    input:
        STUDY_OUTPUTS,
    localrule: True
