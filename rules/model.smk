# Model: optional fine-tune of the cross-encoder, baseline re-ranking (BM25 vs cross-encoder vs fusion), metrics.


TRAINING_INPUTS = dict(
    queries=expand(rules.dataset.output.queries, dataset=IN_DOMAIN),
    qrels=expand(rules.dataset.output.qrels, dataset=IN_DOMAIN),
    candidates=expand(rules.candidates.output.candidates, dataset=IN_DOMAIN),
    docs=expand(rules.candidates.output.docs, dataset=IN_DOMAIN),
)
DISTILL = config["model"]["finetune"] and config["finetune"].get("loss", "contrastive") != "contrastive"
RELEVANT_MIN_GRADE = {
    d: irdata.DatasetSpec.from_config(d, config["datasets"][d]).relevant_min_grade
    for d in IN_DOMAIN
}


if DISTILL:

    rule teacher_scores:
        input:
            **TRAINING_INPUTS,
        output:
            scores=f"{RESULTS}/model/teacher_scores.parquet",
        log:
            f"{RESULTS}/logs/teacher_scores.log",
        benchmark:
            f"{RESULTS}/benchmarks/teacher_scores.tsv"
        conda:
            "../envs/torch.yaml"
        threads: all_cores()
        resources:
            mem_mb=6000,
            runtime=30,
            gpu=1,
        params:
            code=script_code("teacher_scores.py"),
            model=config["model"],
            finetune=config["finetune"],
            relevant_min_grade=RELEVANT_MIN_GRADE,
            seed=SEED,
        script:
            "../scripts/teacher_scores.py"


if config["model"]["finetune"]:

    rule finetune:
        input:
            **TRAINING_INPUTS,
            **(
                {"teacher": f"{RESULTS}/model/teacher_scores.parquet"}
                if DISTILL
                else {}
            ),
        output:
            model=directory(f"{RESULTS}/model/hf"),
            ref=f"{RESULTS}/model/model.json",
            train_log=f"{RESULTS}/model/train_log.json",
        log:
            f"{RESULTS}/logs/finetune.log",
        benchmark:
            f"{RESULTS}/benchmarks/finetune.tsv"
        conda:
            "../envs/torch.yaml"
        threads: all_cores()
        resources:
            mem_mb=8000,
            runtime=120,
            gpu=1,
        params:
            code=script_code("finetune.py"),
            model=config["model"],
            finetune=config["finetune"],
            relevant_min_grade=RELEVANT_MIN_GRADE,
            seed=SEED,
        script:
            "../scripts/finetune.py"

else:

    rule model_reference:
        output:
            ref=f"{RESULTS}/model/model.json",
        log:
            f"{RESULTS}/logs/model_reference.log",
        benchmark:
            f"{RESULTS}/benchmarks/model_reference.tsv"
        conda:
            "../envs/torch.yaml"
        resources:
            mem_mb=1000,
            runtime=10,
        params:
            code=script_code("model_reference.py"),
            model=config["model"],
        script:
            "../scripts/model_reference.py"


rule rerank:
    input:
        queries=rules.dataset.output.queries,
        candidates=rules.candidates.output.candidates,
        docs=rules.candidates.output.docs,
        model=f"{RESULTS}/model/model.json",
    output:
        scores=f"{RESULTS}/runs/{{dataset}}/scores.parquet",
        bm25=f"{RESULTS}/runs/{{dataset}}/bm25.trec",
        ce=f"{RESULTS}/runs/{{dataset}}/cross_encoder.trec",
        fusion=f"{RESULTS}/runs/{{dataset}}/fusion.trec",
    log:
        f"{RESULTS}/logs/rerank/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/rerank/{{dataset}}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: all_cores()
    resources:
        mem_mb=6000,
        runtime=60,
        gpu=1,
    params:
        code=script_code("rerank.py"),
        rerank=config["rerank"],
    script:
        "../scripts/rerank.py"


rule baseline_metrics:
    input:
        scores=rules.rerank.output.scores,
        qrels=rules.dataset.output.qrels,
    output:
        metrics=f"{RESULTS}/metrics/{{dataset}}/baseline.json",
        per_query=f"{RESULTS}/metrics/{{dataset}}/baseline_per_query.csv",
    log:
        f"{RESULTS}/logs/baseline_metrics/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/baseline_metrics/{{dataset}}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=script_code("baseline_metrics.py"),
        relevant_min_grade=lambda wc: irdata.DatasetSpec.from_config(
            wc.dataset, dataset_cfg(wc)
        ).relevant_min_grade,
        seed=SEED,
    script:
        "../scripts/baseline_metrics.py"


rule baseline_table:
    input:
        metrics=expand(rules.baseline_metrics.output.metrics, dataset=DATASETS),
        model=f"{RESULTS}/model/model.json",
    output:
        csv=f"{RESULTS}/tables/baseline.csv",
        md=f"{RESULTS}/tables/baseline.md",
    log:
        f"{RESULTS}/logs/baseline_table.log",
    benchmark:
        f"{RESULTS}/benchmarks/baseline_table.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        code=script_code("baseline_table.py"),
    script:
        "../scripts/baseline_table.py"
