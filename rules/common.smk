# Shared Python for all rules: config validation, parse-time input checks, path helpers.
import json

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from irneurons.configuration import ConfigError, check_config

try:  # one-line message naming the key first; snakemake's validate then fills defaults
    check_config(config, workflow.source_path("../config/schema.yaml"))
except ConfigError as err:
    raise WorkflowError(str(err)) from None
validate(config, schema="../config/schema.yaml")

from irneurons import data as irdata
from irneurons import model as irmodel
from irneurons.provenance import code_version, config_hash

RESULTS = f"results/{config['name']}"
DATASETS = list(config["datasets"])
IN_DOMAIN = [
    d for d in DATASETS if config["datasets"][d].get("role", "in_domain") == "in_domain"
]
CONFIG_HASH = config_hash(config)
SEED = config["seed"]


wildcard_constraints:
    dataset="|".join(DATASETS),
    shard=r"\d+",


def shard_ids():
    """Shards per dataset, fixed by config so the whole DAG is known at dry-run (empty shards allowed)."""
    per_class, size = config["pairs"]["per_class"], config["pairs"]["shard_size"]
    return list(range(-(-2 * per_class // size)))


def dataset_cfg(wildcards):
    return config["datasets"][wildcards.dataset]


def check_inputs():
    """Fail at parse time, with one line naming the culprit, before any job runs."""
    try:
        for name, cfg in config["datasets"].items():
            irdata.check_source(irdata.DatasetSpec.from_config(name, cfg))
        if config["model"].get("finetune") and not IN_DOMAIN:
            raise irdata.DataError(
                "model.finetune is true but no dataset has role in_domain"
            )
        irmodel.resolve_model_source(config["model"]["source"])
    except (irdata.DataError, irmodel.ModelError) as err:
        raise WorkflowError(f"irneurons config error: {err}") from None


check_inputs()
