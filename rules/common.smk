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
from irneurons import select as irselect
from irneurons.provenance import code_version, stamp

RESULTS = f"results/{config['name']}"
DATASETS = list(config["datasets"])
ROLES = {d: config["datasets"][d].get("role", "in_domain") for d in DATASETS}
IN_DOMAIN = [d for d in DATASETS if ROLES[d] == "in_domain"]
SEED = config["seed"]


wildcard_constraints:
    dataset="|".join(DATASETS),
    shard=r"\d+",
    unit_type="ffn|head",
    target="ffn|head|ffn-(cls|query|sep1|passage|sep2)",
    strategy=r"nig_top|nig_bottom|magnitude|random-\d+",
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
    """Datasets a selection scheme reads (see irneurons.select.parse_scheme)."""
    return irselect.parse_scheme(scheme, ROLES)[1]


def pruning_jobs():
    """Every pruning job of the config as dicts: target (ffn, ffn-<part>, head), unit_type, scheme, strategy
    (random expanded to random-0 .. random-(n-1)), fraction."""
    cfg = config["pruning"]
    seeds = [f"random-{i}" for i in range(cfg["random_seeds"])]
    jobs = []
    for unit_type, key in (("ffn", "ffn"), ("head", "heads")):
        grid = cfg[key]
        targets = ["head"]
        if unit_type == "ffn":
            targets = ["ffn" if p == "all" else f"ffn-{p}" for p in cfg["parts"]]
        for scheme, strategies in grid.get("schemes", {}).items():
            names = [n for s in strategies for n in (seeds if s == "random" else [s])]
            for strategy in names:
                for fraction in grid.get("fractions", []):
                    for target in targets:
                        jobs.append(
                            dict(
                                target=target,
                                unit_type=unit_type,
                                scheme=scheme,
                                strategy=strategy,
                                fraction=str(fraction),
                            )
                        )
    return jobs


def pruning_outputs(dataset):
    pattern = f"{RESULTS}/pruning/{dataset}/{{target}}/{{scheme}}/{{strategy}}/{{fraction}}.json"
    return [pattern.format(**job) for job in pruning_jobs()]


def write_selection_job(input, output, params, wildcards):
    """The select_units job: one set of units (scheme x strategy x fraction) as JSON."""
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
        provenance=stamp(config, params.seed),
    )


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
        for key in ("ffn", "heads"):
            for scheme in config["pruning"][key].get("schemes", {}):
                try:
                    kind, _ = irselect.parse_scheme(scheme, ROLES)
                except ValueError as err:
                    raise irdata.DataError(f"pruning.{key}.schemes: {err}") from None
                if kind == "ood" and not (IN_DOMAIN and len(IN_DOMAIN) < len(DATASETS)):
                    raise irdata.DataError(
                        f"pruning.{key}.schemes: scheme 'ood' needs an in_domain and an ood dataset"
                    )
    except (irdata.DataError, irmodel.ModelError) as err:
        raise WorkflowError(f"irneurons config error: {err}") from None


check_inputs()
