# irneurons: which neurons matter in neural re-rankers (Neuron Integrated Gradients for cross-encoders).
# Run: snakemake --cores 2   (config/config.yaml; --configfile config/ci.yaml for the tiny run)
from snakemake.utils import min_version

min_version("9.0")


# The embedded default, unless a config file is given: --configfile replaces it rather than being merged into it
# (a merge would add the default's cranfield and vaswani to every other study).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "rules/study.smk"


MAIN_OUTPUTS = STUDY_OUTPUTS
COMPANION = companion_config(config)

if COMPANION:
    # The companion model (config `companion`, e.g. the default's zero-shot bi-encoder) is the same study
    # imported as a module with its own config: its rules are `companion_*`, its results results/<its name>/.

    module companion:
        snakefile:
            "rules/study.smk"
        config:
            COMPANION

    use rule * from companion as companion_*

    include: "rules/compare.smk"


report: "report/workflow.rst"


rule all:
    default_target: True
    input:
        MAIN_OUTPUTS,
        # the comparison table / figure and every output of the companion study
        [*rules.compare_models.output, *rules.companion_study.input] if COMPANION else [],
