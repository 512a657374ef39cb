# Neuron explorer: one static HTML page (data embedded, no server) for browsing the selected units, their
# conductance, the pruning effect of every set containing them, the tokens where they conduct most (neuron_tokens:
# per-token NIG of every selected unit over explorer.pairs_per_class attribution pairs per dataset and class) and
# the example pairs' token attributions.

from irneurons.figures.explorer import assets_version

EXPLORER = config["explorer"]


# Seconds of pandas: on a cluster it runs on the submitting host instead of queueing.
localrules:
    explorer,


rule neuron_tokens:
    input:
        pairs=expand(rules.pairs.output.pairs, dataset=DATASETS),
        queries=expand(rules.dataset.output.queries, dataset=DATASETS),
        docs=expand(rules.candidates.output.docs, dataset=DATASETS),
        model=f"{RESULTS}/model/model.json",
        sets=planning.selection_files(config, selected_only=True),
    output:
        json=f"{RESULTS}/explorer/neuron_tokens.json",
    log:
        f"{RESULTS}/logs/neuron_tokens.log",
    benchmark:
        f"{RESULTS}/benchmarks/neuron_tokens.tsv"
    conda:
        "../envs/torch.yaml"
    threads: all_cores()
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=1,
    params:
        code=script_code("neuron_tokens.py"),
        nig=config["nig"],
        explorer=EXPLORER,
        datasets=DATASETS,
    script:
        "../scripts/neuron_tokens.py"


rule explorer:
    input:
        neurons=expand(f"{RESULTS}/neurons/{{dataset}}.parquet", dataset=DATASETS),
        sets=planning.selection_files(config),
        unpruned=expand(
            f"{RESULTS}/pruning/{{dataset}}/unpruned.json", dataset=DATASETS
        ),
        pruned=[p for d in DATASETS for p in planning.pruning_outputs(config, d)],
        tokens=(
            expand(rules.token_attributions.output.tokens, dataset=DATASETS)
            if FIG["token_examples"]
            else []
        ),
        neuron_tokens=(
            rules.neuron_tokens.output.json if EXPLORER["pairs_per_class"] else []
        ),
    output:
        html=report(
            f"{RESULTS}/explorer/index.html",
            caption="../report/explorer.rst",
            category="Explorer",
        ),
    log:
        f"{RESULTS}/logs/explorer.log",
    benchmark:
        f"{RESULTS}/benchmarks/explorer.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=script_code("explorer.py"),
        assets=assets_version(),
        name=config["name"],
        datasets=DATASETS,
    script:
        "../scripts/explorer.py"
