# Neuron explorer: one static HTML page (data embedded, no server) for browsing the selected units, their
# conductance, the pruning effect of every set containing them and the example pairs' token attributions.

from irneurons.explorer import assets_version


# Seconds of pandas: on a cluster it runs on the submitting host instead of queueing.
localrules:
    explorer,


rule explorer:
    input:
        # neuron_tokens.json: added with the per-token rule (read if present, optional meanwhile)
        neurons=expand(f"{RESULTS}/neurons/{{dataset}}.parquet", dataset=DATASETS),
        sets=sorted(  # every selection file the pruning grid uses
            {rules.select_units.output.units.format(**job) for job in pruning_jobs()}
        ),
        unpruned=expand(
            f"{RESULTS}/pruning/{{dataset}}/unpruned.json", dataset=DATASETS
        ),
        pruned=[p for d in DATASETS for p in pruning_outputs(d)],
        tokens=(
            expand(rules.token_attributions.output.tokens, dataset=DATASETS)
            if FIG["token_examples"]
            else []
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
        code=code_version("explorer"),
        assets=assets_version(),
        name=config["name"],
        datasets=DATASETS,
        per_token=f"{RESULTS}/explorer/neuron_tokens.json",
    script:
        "../scripts/explorer.py"
