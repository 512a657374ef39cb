# Neurons: merge a dataset's NIG shards (streaming) into per-unit statistics and a completeness table.


rule aggregate:
    input:
        shards=lambda wc: expand(
            f"{RESULTS}/nig/{wc.dataset}/shard-{{shard}}.npz", shard=shard_ids()
        ),
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
        code=code_version("aggregate", "nig"),
    script:
        "../scripts/aggregate.py"
