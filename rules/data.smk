# Data: ir_datasets id or local BEIR folder -> queries (with split), qrels (with gains), candidates, pairs.


rule dataset:
    output:
        queries=f"{RESULTS}/data/{{dataset}}/queries.parquet",
        qrels=f"{RESULTS}/data/{{dataset}}/qrels.parquet",
    log:
        f"{RESULTS}/logs/dataset/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/dataset/{{dataset}}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        code=script_code("prepare_dataset.py"),
        spec=dataset_cfg,
        cache=config["ir_datasets"],
    script:
        "../scripts/prepare_dataset.py"


rule candidates:
    input:
        queries=rules.dataset.output.queries,
        qrels=rules.dataset.output.qrels,
    output:
        candidates=f"{RESULTS}/data/{{dataset}}/candidates.parquet",
        docs=f"{RESULTS}/data/{{dataset}}/docs.parquet",
    log:
        f"{RESULTS}/logs/candidates/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/candidates/{{dataset}}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: lambda wc: all_cores() if dataset_cfg(wc).get("first_stage") == "dense" else 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        code=script_code("first_stage.py"),
        spec=dataset_cfg,
        cache=config["ir_datasets"],
    script:
        "../scripts/first_stage.py"


rule pairs:
    input:
        queries=rules.dataset.output.queries,
        qrels=rules.dataset.output.qrels,
        candidates=rules.candidates.output.candidates,
    output:
        pairs=f"{RESULTS}/data/{{dataset}}/pairs.parquet",
    log:
        f"{RESULTS}/logs/pairs/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/pairs/{{dataset}}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=script_code("sample_pairs.py"),
        per_class=config["pairs"]["per_class"],
        shard_size=config["pairs"]["shard_size"],
        relevant_min_grade=lambda wc: irdata.DatasetSpec.from_config(
            wc.dataset, dataset_cfg(wc)
        ).relevant_min_grade,
        seed=SEED,
    script:
        "../scripts/sample_pairs.py"
