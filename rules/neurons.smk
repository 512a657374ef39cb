# Neurons: merge a dataset's NIG shards (streaming) into per-unit statistics, split-half means and completeness;
# select unit sets (schemes x strategies x fractions); summarise stability and OOD neurons.


rule aggregate:
    input:
        shards=lambda wc: expand(
            f"{RESULTS}/nig/{wc.dataset}/shard-{{shard}}.npz", shard=planning.shard_ids(config)
        ),
        pairs=rules.pairs.output.pairs,
    output:
        table=f"{RESULTS}/neurons/{{dataset}}.parquet",
        completeness=f"{RESULTS}/neurons/{{dataset}}_completeness.csv",
    log:
        f"{RESULTS}/logs/aggregate/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/aggregate/{{dataset}}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        code=script_code("aggregate.py"),
        seed=SEED,
    script:
        "../scripts/aggregate.py"


# Selection is a few milliseconds of pandas: run it inside Snakemake (no interpreter start per set).
localrules:
    select_units,


rule select_units:
    input:
        tables=lambda wc: expand(
            f"{RESULTS}/neurons/{{d}}.parquet", d=scheme_members(wc.scheme)
        ),
    output:
        units=f"{RESULTS}/{planning.SELECTION_PATTERN}",
    log:
        f"{RESULTS}/logs/select_units/{{unit_type}}-{{scheme}}-{{strategy}}-{{fraction}}.log",
    params:
        code=code_version("study.selection"),
        score=config["pruning"]["score"],
        seed=SEED,
        n_sets=selection_sets,
    run:
        write_selection_job(input, output, params, wildcards)


rule stability:
    input:
        shards=[
            f"{RESULTS}/nig/{d}/shard-{s}.npz" for d in DATASETS for s in planning.shard_ids(config)
        ],
        pairs=expand(rules.pairs.output.pairs, dataset=DATASETS),
    output:
        stability=f"{RESULTS}/tables/stability.csv",
    log:
        f"{RESULTS}/logs/stability.log",
    benchmark:
        f"{RESULTS}/benchmarks/stability.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=8000,
        runtime=20,
    params:
        code=script_code("stability.py"),
        datasets=DATASETS,
        shards_per_dataset=len(planning.shard_ids(config)),
        stability=config["stability"],
        standardise=config["pruning"]["score"]["standardise"],
        fractions=planning.summary_fractions(config),
        seed=SEED,
    script:
        "../scripts/stability.py"


rule neuron_sets_summary:
    input:
        tables=expand(f"{RESULTS}/neurons/{{dataset}}.parquet", dataset=DATASETS),
    output:
        ood=f"{RESULTS}/tables/ood_neurons.csv",
    log:
        f"{RESULTS}/logs/neuron_sets_summary.log",
    benchmark:
        f"{RESULTS}/benchmarks/neuron_sets_summary.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=script_code("neuron_sets_summary.py"),
        score=config["pruning"]["score"],
        fractions=planning.summary_fractions(config),
        datasets=DATASETS,
        roles=ROLES,
    script:
        "../scripts/neuron_sets_summary.py"
