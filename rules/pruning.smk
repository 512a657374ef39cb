# Pruning study: zero the selected units, re-rank each dataset's test queries (first-stage top-`depth`), score
# per query; then paired tests of every strategy vs the unpruned model and of nig_top vs random (Holm).


rule prune:
    input:
        unpack(prune_inputs),
    output:
        result=f"{RESULTS}/{planning.PRUNING_PATTERN}",
    log:
        f"{RESULTS}/logs/prune/{{dataset}}/{{target}}-{{scheme}}-{{strategy}}-{{fraction}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prune/{{dataset}}/{{target}}-{{scheme}}-{{strategy}}-{{fraction}}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=30,
        gpu=1,
    params:
        code=script_code("prune.py"),
        depth=config["pruning"]["depth"],
        rerank=config["rerank"],
        eval_opts=eval_options,
        seed=SEED,
    script:
        "../scripts/prune.py"


use rule prune as prune_unpruned with:
    input:
        unpack(prune_inputs),
    output:
        result=f"{RESULTS}/pruning/{{dataset}}/unpruned.json",
    log:
        f"{RESULTS}/logs/prune/{{dataset}}/unpruned.log",
    benchmark:
        f"{RESULTS}/benchmarks/prune/{{dataset}}/unpruned.tsv"


localrules:
    pruning_table,


rule pruning_table:
    input:
        unpruned=expand(
            f"{RESULTS}/pruning/{{dataset}}/unpruned.json", dataset=DATASETS
        ),
        pruned=[p for d in DATASETS for p in planning.pruning_outputs(config, d)],
    output:
        csv=f"{RESULTS}/tables/pruning.csv",
        md=f"{RESULTS}/tables/pruning.md",
        ood=f"{RESULTS}/tables/ood_contrast.csv",
    log:
        f"{RESULTS}/logs/pruning_table.log",
    benchmark:
        f"{RESULTS}/benchmarks/pruning_table.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=script_code("pruning_table.py"),
        roles=ROLES,
        seed=SEED,
    script:
        "../scripts/pruning_table.py"


localrules:
    claims,


rule claims:
    input:
        pruning=rules.pruning_table.output.csv,
        ood=rules.pruning_table.output.ood,
        stability=rules.stability.output.stability,
    output:
        csv=f"{RESULTS}/tables/claims.csv",
        md=report(
            f"{RESULTS}/tables/claims.md",
            caption="../report/claims.rst",
            category="Tables",
        ),
    log:
        f"{RESULTS}/logs/claims.log",
    conda:
        "../envs/data.yaml"
    params:
        code=script_code("claims.py"),
        fraction=planning.claim_fraction(config),
    script:
        "../scripts/claims.py"
