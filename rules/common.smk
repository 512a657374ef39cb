# Shared Python for all rules: config validation, parse-time input checks, and the rules' input functions: thin
# wrappers over irneurons.workflow.planning, which plans the job grid from the config alone (no Snakemake).
import contextlib
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from irneurons.errors import ConfigError, DataError, ModelError, UnsupportedArchitecture
from irneurons.workflow.configuration import check_config

try:  # one-line message naming the key first; snakemake's validate then fills defaults
    check_config(config, workflow.source_path("../config/schema.yaml"))
except ConfigError as err:
    raise WorkflowError(str(err)) from None
validate(config, schema="../config/schema.yaml")

import irneurons.workflow.planning as planning
from irneurons.retrieval import datasets as irdata
from irneurons.rankers import loading as irmodel
from irneurons.study import selection as irselect
from irneurons.workflow.provenance import code_version, script_code_version, stamp

RESULTS = planning.results_dir(config)
DATASETS = list(config["datasets"])
ROLES = planning.roles(config)
IN_DOMAIN = [d for d in DATASETS if ROLES[d] == "in_domain"]
SEED = config["seed"]
SCRIPTS = f"{workflow.current_basedir}/../scripts"


def script_code(name):
    """A rule's ``code`` param: the version of the package code its script imports (a code edit reruns it)."""
    return script_code_version(f"{SCRIPTS}/{name}")


wildcard_constraints:
    dataset="|".join(DATASETS),
    shard=r"\d+",
    unit_type="ffn|head",
    target="ffn|head|ffn-(cls|query|sep1|passage|sep2)",
    strategy="|".join(irselect.STRATEGIES),
    fraction=r"[0-9.eE-]+",
    scheme=r"[A-Za-z0-9_.-]+",


def all_cores():
    """--cores for local runs; 1 where no core count is defined (--unlock, remote executors: there the
    profile's set-threads decides)."""
    try:
        return max(1, workflow.cores)
    except Exception:
        return 1


@contextlib.contextmanager
def config_errors():
    """An irneurons config / data / model error raised inside: one line ``irneurons config error: ...``."""
    try:
        yield
    except (ConfigError, DataError, ModelError, UnsupportedArchitecture) as err:
        raise WorkflowError(f"irneurons config error: {err}") from None


def check_hub_model(ref):
    """A hub model must be in the local HF cache or reachable on the hub: checked once, here, in the main
    Snakemake process (not in each job's re-parse). A real run fails up front (one line naming the id); a
    dry-run looks in the cache only and warns."""
    if not irmodel.is_hub_id(ref) or not workflow.is_main_process:
        return
    if not planning.planning_only(sys.argv[1:]):
        irmodel.check_hub_model(ref)
        return
    try:
        irmodel.check_hub_model(ref, network=False)
    except ModelError as err:
        warning = "a real run checks the hub first and stops there if it cannot be had"
        print(f"irneurons warning: {err}; {warning}", file=sys.stderr)


def check_inputs():
    """Fail at parse time, with one line naming the culprit, before any job runs."""
    with config_errors():
        for name, cfg in config["datasets"].items():
            irdata.check_source(irdata.DatasetSpec.from_config(name, cfg))
        planning.check_finetune(config)
        irmodel.resolve_model_source(config["model"]["source"])
        check_hub_model(config["model"]["source"])
        irmodel.check_supported(config["model"]["source"])
        for cfg in config["datasets"].values():
            if cfg.get("first_stage") == "dense":
                irmodel.check_supported(cfg.get("dense_model", irmodel.PYPI_MINILM))
        planning.check_schemes(config)
        planning.pruning_jobs(config)  # planned (and cached) once here: n_sets conflicts fail now


check_inputs()


def companion_config(cfg):
    """The companion study's config (:func:`irneurons.workflow.planning.companion_config`; None if unset)."""
    with config_errors():
        return planning.companion_config(cfg)


def dataset_cfg(wildcards):
    return config["datasets"][wildcards.dataset]


def scheme_members(scheme):
    """Datasets a selection scheme reads (see irneurons.study.selection.parse_scheme)."""
    return planning.scheme_members(config, scheme)


def selection_sets(wc):
    """Number of sets of one selection file (sets/{unit_type}/{scheme}/{strategy}/{fraction}.json)."""
    return planning.selection_sets(planning.pruning_jobs(config), wc.unit_type, wc.scheme, wc.strategy, wc.fraction)


def write_selection_job(input, output, params, wildcards):
    """The select_units job (its run directive): the unit set(s) of one scheme x strategy x fraction as JSON."""
    w, score = wildcards, irselect.ScoreOptions.from_config(params.score)
    spec = irselect.SelectionSpec(
        w.scheme, w.strategy, w.unit_type, float(w.fraction), score, seed=params.seed, n_sets=params.n_sets
    )
    tables = dict(zip(scheme_members(w.scheme), input.tables))
    irselect.write_selection(output.units, tables, ROLES, spec, provenance=stamp(config, params.seed))


def eval_options(wc):
    """How a dataset's runs are evaluated: binary measures count gain >= its relevant_min_grade."""
    spec = irdata.DatasetSpec.from_config(wc.dataset, config["datasets"][wc.dataset])
    return {"relevance_level": spec.relevant_min_grade}


def prune_inputs(wc):
    """A prune job's inputs: the model, the dataset's runs and texts, and (unless unpruned) its unit sets."""
    inputs = dict(
        model=f"{RESULTS}/model/model.json",
        scores=rules.rerank.output.scores.format(dataset=wc.dataset),
        queries=rules.dataset.output.queries.format(dataset=wc.dataset),
        qrels=rules.dataset.output.qrels.format(dataset=wc.dataset),
        docs=rules.candidates.output.docs.format(dataset=wc.dataset),
    )
    if hasattr(wc, "target"):
        unit_type = "head" if wc.target == "head" else "ffn"
        inputs["units"] = rules.select_units.output.units.format(
            unit_type=unit_type, scheme=wc.scheme, strategy=wc.strategy, fraction=wc.fraction
        )
    return inputs
