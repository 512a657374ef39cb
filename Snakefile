# irneurons: which neurons matter in neural re-rankers (Neuron Integrated Gradients for cross-encoders).
# Run: snakemake --cores 2   (config/config.yaml; --configfile config/ci.yaml for the tiny run)
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/model.smk"
include: "rules/attribution.smk"
include: "rules/neurons.smk"
include: "rules/pruning.smk"


rule all:
    default_target: True
    input:
        f"{RESULTS}/tables/baseline.md",
        expand(f"{RESULTS}/neurons/{{dataset}}.parquet", dataset=DATASETS),
        f"{RESULTS}/tables/pruning.md",
        f"{RESULTS}/tables/stability.csv",
        f"{RESULTS}/tables/ood_neurons.csv",
