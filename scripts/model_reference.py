"""No fine-tuning: record which ready cross-encoder to use (checked to resolve; hub ids download on first use)."""

from irneurons.rankers import loading as model
from irneurons.workflow.provenance import setup_logging, stamp

setup_logging(snakemake.log[0])
mcfg = snakemake.params.model
model.resolve_model_source(mcfg["source"])
model.write_model_ref(snakemake.output.ref, mcfg["source"], mcfg, finetuned=False, provenance=stamp(snakemake.config))
