"""Planning of the Snakemake workflow: the job grid and the paths it implies, as pure functions of the (validated)
config dict. No Snakemake and no torch here: ``rules/common.smk`` wraps these functions into input functions and
params, and tests call them directly.

The pruning grid. For each unit type (``ffn`` from ``pruning.ffn``, ``head`` from ``pruning.heads``) the grid is
the product

    (scheme, strategy entry) x dataset x fraction x target

where the schemes are the config's (or, for FFN without ``schemes``, :func:`irneurons.study.selection.default_grid`
of the datasets declared), a strategy entry ``random:N`` asks for N random sets, ``self`` / ``loo`` resolve per
pruned dataset (:func:`irneurons.study.selection.resolve_scheme`) and the FFN targets are the token parts of
``pruning.parts`` (``all`` -> ``ffn``, ``p`` -> ``ffn-p``; heads have the one target ``head``). One pruning job is
one output path ``pruning/{dataset}/{target}/{scheme}/{strategy}/{fraction}.json``; two grid points on one path
must agree on the number of sets. Each job reads the selection file
``sets/{unit_type}/{scheme}/{strategy}/{fraction}.json``, shared by every dataset and target that uses it.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import NamedTuple

from irneurons.errors import ConfigError
from irneurons.study.selection import (
    MULTI_STRATEGIES,
    default_grid,
    parse_scheme,
    parse_strategy_entry,
    resolve_scheme,
)

#: (unit type, its section of ``pruning``), in the order their jobs are planned.
UNIT_GRIDS = (("ffn", "ffn"), ("head", "heads"))

PRUNING_PATTERN = "pruning/{dataset}/{target}/{scheme}/{strategy}/{fraction}.json"
SELECTION_PATTERN = "sets/{unit_type}/{scheme}/{strategy}/{fraction}.json"

#: Invocations that run no job: a hub model is then checked in the local cache only, and a miss is a warning.
PLANNING_FLAGS = frozenset({
    "--dry-run", "--dryrun", "--lint", "--unlock", "--summary", "--detailed-summary", "--report", "--dag",
    "--rulegraph", "--filegraph", "--d3dag", "--list", "--list-rules", "--list-target-rules", "--cleanup-metadata",
})


class PruningJob(NamedTuple):
    """One pruning job: its output path's wildcards, its unit type and how many unit sets it prunes in turn."""

    dataset: str
    target: str  # ffn, ffn-<part> or head
    unit_type: str  # ffn or head
    scheme: str  # resolved: self -> <dataset>, loo -> loo-<dataset>
    strategy: str
    fraction: str  # as the config writes it (str of the number): a path component
    n_sets: int  # 1, or the number of random sets


def results_dir(config: dict) -> str:
    """Where a study's outputs go: ``results/<name>``."""
    return f"results/{config['name']}"


def roles(config: dict) -> dict[str, str]:
    """{dataset: role} in the config's dataset order; a dataset without ``role`` is ``in_domain``."""
    return {name: cfg.get("role", "in_domain") for name, cfg in config["datasets"].items()}


def shard_ids(config: dict) -> list[int]:
    """Shard indices per dataset, fixed by config so the whole DAG is known at dry-run (empty shards allowed).

    Args:
        config: the workflow config; reads ``pairs.per_class`` (pairs per class, two classes) and
            ``pairs.shard_size``.

    Returns:
        ``[0, 1, ..., ceil(2 * per_class / shard_size) - 1]``.

    Examples:
        >>> shard_ids({"pairs": {"per_class": 5, "shard_size": 4}})
        [0, 1, 2]
    """
    per_class, size = config["pairs"]["per_class"], config["pairs"]["shard_size"]
    return list(range(-(-2 * per_class // size)))


def pruning_grid(config: dict, key: str) -> dict[str, list[str]]:
    """{scheme: strategy entries} of one unit type's grid (``key``: ``ffn`` or ``heads``); FFN without
    ``schemes``: :func:`irneurons.study.selection.default_grid` of the datasets declared; heads without: none."""
    grid = config["pruning"][key]
    if "schemes" in grid:
        return grid["schemes"]
    return default_grid(roles(config)) if key == "ffn" else {}


def _grid_points(config: dict):
    """(section key, :class:`PruningJob`) of every point of the grid, in planning order (duplicates included)."""
    cfg = config["pruning"]
    datasets = list(config["datasets"])
    for unit_type, key in UNIT_GRIDS:
        targets = ["head"]
        if unit_type == "ffn":
            targets = ["ffn" if part == "all" else f"ffn-{part}" for part in cfg["parts"]]
        entries = [
            (scheme, *parse_strategy_entry(entry, cfg["random_sets"], cfg["layer_matched_sets"]))
            for scheme, scheme_entries in pruning_grid(config, key).items()
            for entry in scheme_entries
        ]
        fractions = cfg[key].get("fractions", [])
        for (scheme, strategy, n_sets), dataset, fraction, target in itertools.product(
            entries, datasets, fractions, targets
        ):
            resolved = resolve_scheme(scheme, dataset)
            yield key, PruningJob(dataset, target, unit_type, resolved, strategy, str(fraction), n_sets)


def _plan(config: dict) -> tuple[PruningJob, ...]:
    """The grid's points, one per output path (the first keeps its place); raises on an n_sets conflict."""
    jobs: dict[tuple, PruningJob] = {}
    for section, job in _grid_points(config):
        path = (job.dataset, job.target, job.scheme, job.strategy, job.fraction)
        if path in jobs and jobs[path].n_sets != job.n_sets:
            raise ConfigError(
                f"pruning.{section}.schemes: {job.strategy} of scheme {job.scheme!r} asked with "
                f"{jobs[path].n_sets} and {job.n_sets} sets"
            )
        jobs.setdefault(path, job)
    return tuple(jobs.values())


_PLANNED: dict[str, tuple[PruningJob, ...]] = {}  # pruning_jobs' cache: {what planning reads, as JSON: jobs}


def pruning_jobs(config: dict) -> tuple[PruningJob, ...]:
    """Every pruning job of the config, one per output path, in planning order (unit type, scheme, strategy
    entry, dataset, fraction, target). Computed once per distinct grid (cached): every caller shares it.

    Args:
        config: the validated workflow config; reads ``datasets`` (names, roles) and ``pruning``.

    Returns:
        The jobs as :class:`PruningJob` tuples (immutable).

    Raises:
        ConfigError: two grid points on one output path ask for different numbers of sets (e.g. ``random:2``
            under ``self`` and ``random:3`` under the dataset's own name).

    Examples:
        >>> cfg = {"datasets": {"a": {}}, "pruning": {"random_sets": 2, "layer_matched_sets": 2, "parts": ["all"],
        ...        "ffn": {"fractions": [0.01], "schemes": {"self": ["nig_top", "random"]}}, "heads": {}}}
        >>> [(j.scheme, j.strategy, j.n_sets) for j in pruning_jobs(cfg)]
        [('a', 'nig_top', 1), ('a', 'random', 2)]
    """
    # what planning reads, in the config's own order (the order of the jobs follows it)
    key = json.dumps([list(roles(config).items()), config["pruning"]], default=str)
    if key not in _PLANNED:
        _PLANNED[key] = _plan(config)
    return _PLANNED[key]


def pruning_outputs(config: dict, dataset: str) -> list[str]:
    """The pruning results of ``dataset`` (paths under :func:`results_dir`), in planning order."""
    pattern = f"{results_dir(config)}/{PRUNING_PATTERN}"
    return [pattern.format(**job._asdict()) for job in pruning_jobs(config) if job.dataset == dataset]


def selection_files(config: dict, selected_only: bool = False) -> list[str]:
    """Every selection file the pruning grid reads, sorted; ``selected_only``: not those of the random null
    controls (the explorer's selected sets)."""
    pattern = f"{results_dir(config)}/{SELECTION_PATTERN}"
    return sorted({
        pattern.format(**job._asdict())
        for job in pruning_jobs(config)
        if not (selected_only and job.strategy in MULTI_STRATEGIES)
    })


def selection_sets(jobs, unit_type: str, scheme: str, strategy: str, fraction: str) -> int:
    """Number of unit sets in the selection file ``sets/{unit_type}/{scheme}/{strategy}/{fraction}.json``.

    Args:
        jobs: :func:`pruning_jobs` of the config.
        unit_type, scheme, strategy, fraction: the file's wildcards (``scheme`` resolved, ``fraction`` a string).

    Returns:
        The ``n_sets`` of the jobs that read it; 1 for a file no job reads.

    Examples:
        >>> selection_sets([PruningJob("a", "ffn", "ffn", "a", "random", "0.01", 3)], "ffn", "a", "random", "0.01")
        3
    """
    wanted = (unit_type, scheme, strategy, fraction)
    return next((job.n_sets for job in jobs if (job.unit_type, job.scheme, job.strategy, job.fraction) == wanted), 1)


def scheme_members(config: dict, scheme: str) -> list[str]:
    """Datasets a resolved selection scheme reads (:func:`irneurons.study.selection.parse_scheme`)."""
    return parse_scheme(scheme, roles(config))[1]


def check_schemes(config: dict) -> None:
    """Every scheme of both grids resolves for every dataset; ``ood`` needs an in_domain and an ood dataset.

    Raises:
        ConfigError: one line naming the grid (``pruning.ffn.schemes`` / ``pruning.heads.schemes``) and scheme.
    """
    declared = roles(config)
    for key in ("ffn", "heads"):
        for scheme in pruning_grid(config, key):
            try:
                kinds = {parse_scheme(resolve_scheme(scheme, d), declared)[0] for d in declared}
            except ValueError as err:
                raise ConfigError(f"pruning.{key}.schemes: {err}") from None
            if "ood" in kinds and not ({"in_domain", "ood"} <= set(declared.values())):
                raise ConfigError(f"pruning.{key}.schemes: scheme 'ood' needs an in_domain and an ood dataset")


def check_finetune(config: dict) -> None:
    """Fine-tuning needs an in_domain dataset and a cross-encoder (``model.kind`` auto or cross_encoder).

    Raises:
        ConfigError: one line naming ``model.finetune``.
    """
    model = config["model"]
    if not model.get("finetune"):
        return
    if "in_domain" not in roles(config).values():
        raise ConfigError("model.finetune is true but no dataset has role in_domain")
    kind = model.get("kind") or "auto"
    from irneurons.rankers.kinds import KINDS

    if kind != "auto" and not (kind in KINDS and KINDS[kind].head):
        raise ConfigError(f"model.finetune fine-tunes cross-encoders; model.kind is {kind}")


def summary_fractions(config: dict) -> dict[str, list[float]]:
    """{unit_type: fractions} the stability and OOD tables report: the pruning grid's and the figures'."""
    cfg, fig = config["pruning"], config["figures"]
    return {
        "ffn": sorted({*cfg["ffn"]["fractions"], fig["fraction"]}),
        "head": sorted({*cfg["heads"]["fractions"], fig["head_fraction"]}),
    }


def claim_fraction(config: dict) -> float:
    """The FFN fraction the claims table reads: ``pruning.claim_fraction``, else the first FFN fraction (0.01)."""
    cfg = config["pruning"]
    return cfg.get("claim_fraction", (cfg["ffn"].get("fractions") or [0.01])[0])


def deep_merge(base: dict, override: dict) -> dict:
    """``override`` merged into a copy of ``base``: nested mappings merge key by key, everything else replaces.

    Examples:
        >>> deep_merge({"a": {"x": 1, "y": 2}, "b": [1]}, {"a": {"y": 3}, "b": [2]})
        {'a': {'x': 1, 'y': 3}, 'b': [2]}
    """
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def companion_config(config: dict) -> dict | None:
    """The companion study's config: the main config with ``companion``'s keys merged over it.

    Its ``name`` may hold ``{name}`` (the main name; default ``{name}-companion``); it keeps the main study's
    datasets and has no companion of its own.

    Args:
        config: the main study's config.

    Returns:
        The merged config, or None when ``companion`` is unset or empty.

    Raises:
        ConfigError: the companion's name equals the main name, or it changes the datasets.

    Examples:
        >>> cfg = {"name": "s", "datasets": {"a": {}}, "model": {"kind": "auto"},
        ...        "companion": {"model": {"kind": "t5"}}}
        >>> companion_config(cfg)["name"], companion_config(cfg)["model"]
        ('s-companion', {'kind': 't5'})
    """
    extra = config.get("companion")
    if not extra:
        return None
    merged = deep_merge({k: v for k, v in config.items() if k != "companion"}, extra)
    merged["name"] = str(extra.get("name", "{name}-companion")).format(name=config["name"])
    if merged["name"] == config["name"]:
        raise ConfigError("companion.name must differ from name")
    if list(merged["datasets"]) != list(config["datasets"]):
        raise ConfigError("companion must keep the main study's datasets")
    merged["companion"] = None
    return merged


def planning_only(argv) -> bool:
    """True when a Snakemake command line runs no job (dry-run ``-n`` / ``-np``, lint, unlock, report, graphs).

    Decided from the command line: at Snakefile parse time ``workflow.dryrun`` is not known yet (always False).

    Args:
        argv: the arguments after the program name (``sys.argv[1:]``).

    Examples:
        >>> planning_only(["-np", "--cores", "2"]), planning_only(["--cores", "2"]), planning_only(["--dag=x"])
        (True, False, True)
    """
    return any(arg.split("=")[0] in PLANNING_FLAGS or re.fullmatch(r"-[A-Za-z]*n[A-Za-z]*", arg) for arg in argv)
