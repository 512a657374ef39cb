# Figures and the report: drawn from tables on disk only. Plot rules depend on the plots module and the
# figures config section alone, so editing either reruns only these jobs.

FIG = config["figures"]


# Seconds of pandas/matplotlib each: on a cluster they run on the submitting host instead of queueing.
localrules:
    figure_tables,
    plot_layers,
    plot_overlap,
    plot_pruning,
    plot_completeness,
    plot_tokens,
    tables_report,


rule figure_tables:
    input:
        tables=expand(f"{RESULTS}/neurons/{{dataset}}.parquet", dataset=DATASETS),
    output:
        layers=f"{RESULTS}/tables/layers.csv",
        overlap=f"{RESULTS}/tables/overlap.csv",
    log:
        f"{RESULTS}/logs/figure_tables.log",
    benchmark:
        f"{RESULTS}/benchmarks/figure_tables.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        code=script_code("figure_tables.py"),
        datasets=DATASETS,
        roles=ROLES,
        fractions={"ffn": FIG["fraction"], "head": FIG["head_fraction"]},
        score=config["pruning"]["score"],
    script:
        "../scripts/figure_tables.py"


rule token_attributions:
    input:
        pairs=rules.pairs.output.pairs,
        queries=rules.dataset.output.queries,
        docs=rules.candidates.output.docs,
        model=f"{RESULTS}/model/model.json",
    output:
        tokens=f"{RESULTS}/tokens/{{dataset}}.parquet",
    log:
        f"{RESULTS}/logs/token_attributions/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/token_attributions/{{dataset}}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        code=script_code("token_attributions.py"),
        examples=FIG["token_examples"],
        baseline=FIG["token_baseline"],
        steps=FIG["token_steps"],
    script:
        "../scripts/token_attributions.py"


rule plot_layers:
    input:
        layers=rules.figure_tables.output.layers,
    output:
        layers=report(
            f"{RESULTS}/figures/layers.png",
            caption="../report/layers.rst",
            category="Neurons",
        ),
        parts=report(
            f"{RESULTS}/figures/layers_by_part.png",
            caption="../report/layers_by_part.rst",
            category="Neurons",
        ),
    log:
        f"{RESULTS}/logs/plot_layers.log",
    conda:
        "../envs/plots.yaml"
    params:
        code=script_code("plot_layers.py"),
        dpi=FIG["dpi"],
    script:
        "../scripts/plot_layers.py"


rule plot_overlap:
    input:
        overlap=rules.figure_tables.output.overlap,
    output:
        ffn=report(
            f"{RESULTS}/figures/overlap_ffn.png",
            caption="../report/overlap.rst",
            category="Neurons",
        ),
        head=report(
            f"{RESULTS}/figures/overlap_head.png",
            caption="../report/overlap.rst",
            category="Neurons",
        ),
    log:
        f"{RESULTS}/logs/plot_overlap.log",
    conda:
        "../envs/plots.yaml"
    params:
        code=script_code("plot_overlap.py"),
        dpi=FIG["dpi"],
    script:
        "../scripts/plot_overlap.py"


rule plot_pruning:
    input:
        table=rules.pruning_table.output.csv,
    output:
        figure=report(
            f"{RESULTS}/figures/pruning.png",
            caption="../report/pruning.rst",
            category="Pruning",
        ),
    log:
        f"{RESULTS}/logs/plot_pruning.log",
    conda:
        "../envs/plots.yaml"
    params:
        code=script_code("plot_pruning.py"),
        dpi=FIG["dpi"],
    script:
        "../scripts/plot_pruning.py"


rule plot_completeness:
    input:
        tables=expand(
            f"{RESULTS}/neurons/{{dataset}}_completeness.csv", dataset=DATASETS
        ),
    output:
        figure=report(
            f"{RESULTS}/figures/completeness.png",
            caption="../report/completeness.rst",
            category="Attribution",
        ),
    log:
        f"{RESULTS}/logs/plot_completeness.log",
    conda:
        "../envs/plots.yaml"
    params:
        code=script_code("plot_completeness.py"),
        dpi=FIG["dpi"],
        datasets=DATASETS,
        label=f"{config['nig']['estimator']} {config['nig']['steps']}",
    script:
        "../scripts/plot_completeness.py"


rule plot_tokens:
    input:
        tokens=rules.token_attributions.output.tokens,
    output:
        png=report(
            f"{RESULTS}/figures/tokens_{{dataset}}.png",
            caption="../report/tokens.rst",
            category="Attribution",
        ),
        html=report(
            f"{RESULTS}/figures/tokens_{{dataset}}.html",
            caption="../report/tokens.rst",
            category="Attribution",
        ),
    log:
        f"{RESULTS}/logs/plot_tokens/{{dataset}}.log",
    conda:
        "../envs/plots.yaml"
    params:
        code=script_code("plot_tokens.py"),
        dpi=FIG["dpi"],
    script:
        "../scripts/plot_tokens.py"


rule tables_report:
    input:
        baseline=rules.baseline_table.output.md,
        pruning=rules.pruning_table.output.md,
        stability=rules.stability.output.stability,
        ood=rules.neuron_sets_summary.output.ood,
        claims=rules.claims.output.md,
    output:
        summary=report(
            f"{RESULTS}/tables/summary.md",
            caption="../report/summary.rst",
            category="Tables",
        ),
    log:
        f"{RESULTS}/logs/tables_report.log",
    conda:
        "../envs/data.yaml"
    params:
        code=script_code("tables_report.py"),
    script:
        "../scripts/tables_report.py"
