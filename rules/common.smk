# Shared Python for all rules: config validation, parse-time input checks, path helpers.
import json
import re
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from irneurons.workflow.configuration import ConfigError, check_config

try:  # one-line message naming the key first; snakemake's validate then fills defaults
    check_config(config, workflow.source_path("../config/schema.yaml"))
except ConfigError as err:
    raise WorkflowError(str(err)) from None
validate(config, schema="../config/schema.yaml")

from irneurons.retrieval import datasets as irdata
from irneurons.rankers import loading as irmodel
from irneurons.study import selection as irselect
from irneurons.errors import UnsupportedArchitecture
from irneurons.errors import ModelError
from irneurons.workflow.provenance import code_version, script_code_version, stamp

RESULTS = f"results/{config['name']}"
DATASETS = list(config["datasets"])
ROLES = {d: config["datasets"][d].get("role", "in_domain") for d in DATASETS}
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


def shard_ids():
    """Shards per dataset, fixed by config so the whole DAG is known at dry-run (empty shards allowed)."""
    per_class, size = config["pairs"]["per_class"], config["pairs"]["shard_size"]
    return list(range(-(-2 * per_class // size)))


def dataset_cfg(wildcards):
    return config["datasets"][wildcards.dataset]


def scheme_members(scheme):
    """Datasets a selection scheme reads (see irneurons.study.selection.parse_scheme)."""
    return irselect.parse_scheme(scheme, ROLES)[1]


def pruning_grid(key):
    """Schemes -> strategies of one unit type's grid; FFN without schemes: adapted to the datasets declared."""
    grid = config["pruning"][key]
    if "schemes" in grid:
        return grid["schemes"]
    return irselect.default_grid(ROLES) if key == "ffn" else {}


def pruning_jobs():
    """Every pruning job of the config as dicts: dataset, target (ffn, ffn-<part>, head), unit_type, scheme
    (self / loo resolved per dataset), strategy, fraction, n_sets (1, or the number of random sets).
    """
    cfg = config["pruning"]
    jobs = {}
    for unit_type, key in (("ffn", "ffn"), ("head", "heads")):
        grid = cfg[key]
        targets = ["head"]
        if unit_type == "ffn":
            targets = ["ffn" if p == "all" else f"ffn-{p}" for p in cfg["parts"]]
        for scheme, entries in pruning_grid(key).items():
            for entry in entries:
                strategy, n_sets = irselect.parse_strategy_entry(
                    entry, cfg["random_sets"], cfg["layer_matched_sets"]
                )
                for dataset in DATASETS:
                    resolved = irselect.resolve_scheme(scheme, dataset)
                    for fraction in grid.get("fractions", []):
                        for target in targets:
                            job = dict(
                                dataset=dataset,
                                target=target,
                                unit_type=unit_type,
                                scheme=resolved,
                                strategy=strategy,
                                fraction=str(fraction),
                                n_sets=n_sets,
                            )
                            path = (dataset, target, resolved, strategy, str(fraction))
                            if path in jobs and jobs[path]["n_sets"] != n_sets:
                                raise WorkflowError(
                                    f"irneurons config error: pruning.{key}.schemes: {strategy} of scheme "
                                    f"{resolved!r} asked with {jobs[path]['n_sets']} and {n_sets} sets"
                                )
                            jobs[path] = job
    return list(jobs.values())


PRUNING_JOBS = None


def selection_sets(wildcards):
    """Number of sets of one selection file (sets/{unit_type}/{scheme}/{strategy}/{fraction}.json)."""
    global PRUNING_JOBS
    PRUNING_JOBS = PRUNING_JOBS or pruning_jobs()
    for job in PRUNING_JOBS:
        if (job["unit_type"], job["scheme"], job["strategy"], job["fraction"]) == (
            wildcards.unit_type,
            wildcards.scheme,
            wildcards.strategy,
            wildcards.fraction,
        ):
            return job["n_sets"]
    return 1


def pruning_outputs(dataset):
    pattern = f"{RESULTS}/pruning/{dataset}/{{target}}/{{scheme}}/{{strategy}}/{{fraction}}.json"
    return [
        pattern.format(**job) for job in pruning_jobs() if job["dataset"] == dataset
    ]


def selection_files(selected_only=False):
    """Every selection file the pruning grid uses; ``selected_only``: not those of the random null controls
    (the explorer's selected sets)."""
    return sorted(
        {
            rules.select_units.output.units.format(**job)
            for job in pruning_jobs()
            if not (selected_only and job["strategy"] in irselect.MULTI_STRATEGIES)
        }
    )


def write_selection_job(input, output, params, wildcards):
    """The select_units job: the unit set(s) of one scheme x strategy x fraction as JSON."""
    irselect.write_selection(
        output.units,
        dict(zip(scheme_members(wildcards.scheme), input.tables)),
        ROLES,
        wildcards.scheme,
        wildcards.strategy,
        wildcards.unit_type,
        float(wildcards.fraction),
        score=params.score,
        seed=params.seed,
        n_sets=params.n_sets,
        provenance=stamp(config, params.seed),
    )


def eval_options(wc):
    """How a dataset's runs are evaluated: binary measures count gain >= its relevant_min_grade."""
    spec = irdata.DatasetSpec.from_config(wc.dataset, config["datasets"][wc.dataset])
    return {"relevance_level": spec.relevant_min_grade}


def summary_fractions():
    """{unit_type: fractions} the stability and OOD tables report: the pruning grid's and the figures'."""
    cfg, fig = config["pruning"], config["figures"]
    return {
        "ffn": sorted({*cfg["ffn"]["fractions"], fig["fraction"]}),
        "head": sorted({*cfg["heads"]["fractions"], fig["head_fraction"]}),
    }


def claim_fraction():
    cfg = config["pruning"]
    return cfg.get("claim_fraction", (cfg["ffn"].get("fractions") or [0.01])[0])


def prune_inputs(wc):
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
            unit_type=unit_type,
            scheme=wc.scheme,
            strategy=wc.strategy,
            fraction=wc.fraction,
        )
    return inputs


def figure_outputs():
    out = [
        rules.plot_layers.output.layers,
        rules.plot_overlap.output.ffn,
        rules.plot_pruning.output.figure,
        rules.plot_completeness.output.figure,
        rules.tables_report.output.summary,
    ]
    if FIG["token_examples"]:
        out += expand(rules.plot_tokens.output.png, dataset=DATASETS)
    return out


# Invocations that run no job: a hub model is then checked in the local cache only, and a miss is a warning.
PLANNING_FLAGS = {
    "--dry-run",
    "--dryrun",
    "--lint",
    "--unlock",
    "--summary",
    "--detailed-summary",
    "--report",
    "--dag",
    "--rulegraph",
    "--filegraph",
    "--d3dag",
    "--list",
    "--list-rules",
    "--list-target-rules",
    "--cleanup-metadata",
}


def planning_only():
    """True when this Snakemake invocation runs no job (dry-run ``-n``/``-np``, lint, unlock, report, graphs).
    Decided from the command line: at parse time ``workflow.dryrun`` is not known yet (always False).
    """
    return any(
        arg.split("=")[0] in PLANNING_FLAGS
        or re.fullmatch(r"-[A-Za-z]*n[A-Za-z]*", arg)
        for arg in sys.argv[1:]
    )


def check_hub_model(ref):
    """A hub model must be in the local HF cache or reachable on the hub: checked once, here, in the main
    Snakemake process (not in each job's re-parse). A real run fails up front (one line naming the id); a
    dry-run looks in the cache only and warns."""
    if not irmodel.is_hub_id(ref) or not workflow.is_main_process:
        return
    if not planning_only():
        irmodel.check_hub_model(ref)
        return
    try:
        irmodel.check_hub_model(ref, network=False)
    except ModelError as err:
        print(
            f"irneurons warning: {err}; a real run checks the hub first and stops there if it cannot be had",
            file=sys.stderr,
        )


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
        check_hub_model(config["model"]["source"])
        irmodel.check_supported(config["model"]["source"])
        kind = config["model"].get("kind") or "auto"
        if config["model"].get("finetune") and kind not in ("auto", "cross_encoder"):
            raise irdata.DataError(
                f"model.finetune fine-tunes cross-encoders; model.kind is {kind}"
            )
        for name, cfg in config["datasets"].items():
            if cfg.get("first_stage") == "dense":
                irmodel.check_supported(cfg.get("dense_model", irmodel.PYPI_MINILM))
        for key in ("ffn", "heads"):
            for scheme in pruning_grid(key):
                try:
                    for dataset in DATASETS:
                        kind, _ = irselect.parse_scheme(
                            irselect.resolve_scheme(scheme, dataset), ROLES
                        )
                except ValueError as err:
                    raise irdata.DataError(f"pruning.{key}.schemes: {err}") from None
                if kind == "ood" and not ({"in_domain", "ood"} <= set(ROLES.values())):
                    raise irdata.DataError(
                        f"pruning.{key}.schemes: scheme 'ood' needs an in_domain and an ood dataset"
                    )
    except (irdata.DataError, ModelError, UnsupportedArchitecture) as err:
        raise WorkflowError(f"irneurons config error: {err}") from None


check_inputs()


def deep_merge(base, override):
    """``override`` merged into a copy of ``base``: nested mappings merge key by key, everything else replaces."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def companion_config(cfg):
    """The companion study's config: the main config with ``companion``'s keys merged over it (None if unset).
    Its ``name`` may hold ``{name}`` (the main name; default ``{name}-companion``); it has no companion of its own.
    """
    extra = cfg.get("companion")
    if not extra:
        return None
    merged = deep_merge({k: v for k, v in cfg.items() if k != "companion"}, extra)
    merged["name"] = str(extra.get("name", "{name}-companion")).format(name=cfg["name"])
    if merged["name"] == cfg["name"]:
        raise WorkflowError(
            "irneurons config error: companion.name must differ from name"
        )
    if list(merged["datasets"]) != list(cfg["datasets"]):
        raise WorkflowError(
            "irneurons config error: companion must keep the main study's datasets"
        )
    merged["companion"] = None
    return merged


def compare_outputs():
    """The comparison table / figure and every output of the companion study (main workflow only)."""
    return [*rules.compare_models.output, *rules.companion_study.input]
