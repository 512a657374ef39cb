# The main model and the companion side by side (same datasets): nDCG@10, and whether they rely on the same neurons.

COMPANION_RESULTS = f"results/{COMPANION['name']}"


rule compare_models:
    input:
        main=expand(f"{RESULTS}/neurons/{{dataset}}.parquet", dataset=DATASETS),
        companion=expand(
            f"{COMPANION_RESULTS}/neurons/{{dataset}}.parquet", dataset=DATASETS
        ),
        main_baseline=f"{RESULTS}/tables/baseline.csv",
        companion_baseline=f"{COMPANION_RESULTS}/tables/baseline.csv",
    output:
        csv=f"{RESULTS}/tables/models.csv",
        md=f"{RESULTS}/tables/models.md",
        figure=report(
            f"{RESULTS}/figures/models_layers.png",
            caption="../report/models.rst",
            category="Models",
        ),
    log:
        f"{RESULTS}/logs/compare_models.log",
    benchmark:
        f"{RESULTS}/benchmarks/compare_models.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=script_code("compare_models.py"),
        datasets=DATASETS,
        names=[config["name"], COMPANION["name"]],
        kinds=[
            "cross_encoder" if cfg["model"]["finetune"] else cfg["model"]["kind"]
            for cfg in (config, COMPANION)
        ],
        score=config["pruning"]["score"],
        fractions=planning.summary_fractions(config),
        seed=SEED,
        dpi=config["figures"]["dpi"],
    script:
        "../scripts/compare_models.py"
