# Attribution: NIG of every FFN neuron and attention head, one job per (dataset, shard) of attribution pairs.


rule attribute:
    input:
        pairs=rules.pairs.output.pairs,
        queries=rules.dataset.output.queries,
        docs=rules.candidates.output.docs,
        model=f"{RESULTS}/model/model.json",
    output:
        shard=f"{RESULTS}/nig/{{dataset}}/shard-{{shard}}.npz",
    log:
        f"{RESULTS}/logs/attribute/{{dataset}}-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/attribute/{{dataset}}-{{shard}}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: all_cores()
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=1,
    params:
        code=script_code("attribute.py"),
        nig=config["nig"],
        seed=SEED,
    script:
        "../scripts/attribute.py"
