# irneurons: which neurons matter in neural re-rankers (Neuron Integrated Gradients for cross-encoders).
# Run: snakemake --cores 2   (config/config.yaml; --configfile config/ci.yaml for the tiny run)
from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless a config file is given: --configfile replaces it rather than being merged into it
# (a merge would add the default's cranfield and vaswani to every other study).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/model.smk"
include: "rules/attribution.smk"
include: "rules/neurons.smk"
include: "rules/pruning.smk"
include: "rules/figures.smk"


report: "report/workflow.rst"


rule all:
    default_target: True
    input:
        f"{RESULTS}/tables/baseline.md",
        expand(f"{RESULTS}/neurons/{{dataset}}.parquet", dataset=DATASETS),
        f"{RESULTS}/tables/pruning.md",
        f"{RESULTS}/tables/stability.csv",
        f"{RESULTS}/tables/ood_neurons.csv",
        f"{RESULTS}/tables/claims.md",
        figure_outputs(),
