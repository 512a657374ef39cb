"""Planning of the workflow without Snakemake: the pruning job grid, selection-file lookups, companion configs,
planning-only command lines and shards (irneurons.workflow.planning)."""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from irneurons.errors import ConfigError
from irneurons.workflow import planning
from irneurons.workflow.planning import PruningJob

REPO = Path(__file__).resolve().parents[1]


def small_config(**pruning):
    """Three datasets (a, b in_domain; c ood), both grids: self / loo / ood schemes, random with n_sets."""
    cfg = {
        "name": "small",
        "datasets": {"a": {}, "b": {"role": "in_domain"}, "c": {"role": "ood"}},
        "pairs": {"per_class": 5, "shard_size": 4},
        "model": {"source": "m", "finetune": False},
        "figures": {"fraction": 0.02, "head_fraction": 0.1},
        "pruning": {
            "random_sets": 3,
            "layer_matched_sets": 2,
            "parts": ["all", "passage"],
            "ffn": {
                "fractions": [0.01, 0.05],
                "schemes": {"self": ["nig_top", "random:4"], "loo": ["random_layer_matched"], "ood": ["nig_top"]},
            },
            "heads": {"fractions": [0.1], "schemes": {"self": ["random"]}},
        },
    }
    cfg["pruning"].update(pruning)
    return cfg


def test_job_grid_counts_fields_and_order():
    jobs = planning.pruning_jobs(small_config())
    # FFN: 4 (scheme, entry) x 3 datasets x 2 fractions x 2 targets; heads: 1 x 3 x 1 x 1
    assert len(jobs) == 4 * 3 * 2 * 2 + 3
    assert all(isinstance(j, PruningJob) for j in jobs)
    # planning order: scheme entry, then dataset, then fraction, then target
    assert jobs[:5] == (
        PruningJob("a", "ffn", "ffn", "a", "nig_top", "0.01", 1),
        PruningJob("a", "ffn-passage", "ffn", "a", "nig_top", "0.01", 1),
        PruningJob("a", "ffn", "ffn", "a", "nig_top", "0.05", 1),
        PruningJob("a", "ffn-passage", "ffn", "a", "nig_top", "0.05", 1),
        PruningJob("b", "ffn", "ffn", "b", "nig_top", "0.01", 1),
    )
    by_path = {(j.dataset, j.target, j.scheme, j.strategy, j.fraction): j for j in jobs}
    assert len(by_path) == len(jobs)  # one job per output path
    assert by_path[("b", "ffn", "b", "random", "0.05")].n_sets == 4  # random:4 overrides random_sets
    assert by_path[("c", "ffn-passage", "loo-c", "random_layer_matched", "0.01")].n_sets == 2  # loo resolved
    assert by_path[("a", "ffn", "ood", "nig_top", "0.01")].unit_type == "ffn"  # ood: one scheme for every dataset
    heads = [j for j in jobs if j.unit_type == "head"]
    assert heads == [PruningJob(d, "head", "head", d, "random", "0.1", 3) for d in "abc"]
    assert {j.scheme for j in jobs} == {"a", "b", "c", "loo-a", "loo-b", "loo-c", "ood"}


def test_grid_without_schemes_and_shared_paths():
    cfg = small_config()
    cfg["pruning"]["ffn"].pop("schemes")  # FFN default grid adapted to the datasets: self, loo and ood
    cfg["pruning"]["heads"].pop("schemes")  # heads: no default grid
    jobs = planning.pruning_jobs(cfg)
    per_dataset_fraction_target = 3 * 2 * 2
    assert len(jobs) == (5 + 2 + 3) * per_dataset_fraction_target
    assert not [j for j in jobs if j.unit_type == "head"]
    assert planning.pruning_grid(cfg, "heads") == {}
    # self on a and scheme a on a plan the same paths: planned once (a's set also prunes b and c)
    cfg = small_config(ffn={"fractions": [0.01], "schemes": {"self": ["nig_top"], "a": ["nig_top"]}})
    jobs = planning.pruning_jobs(cfg)
    assert len(jobs) == 3 * 2 + (3 - 1) * 2 + 3
    assert [(j.dataset, j.target) for j in jobs if j.scheme == "a" and j.unit_type == "ffn"] == [
        ("a", "ffn"), ("a", "ffn-passage"), ("b", "ffn"), ("b", "ffn-passage"), ("c", "ffn"), ("c", "ffn-passage")]


def test_duplicate_n_sets_is_a_config_error():
    cfg = small_config(ffn={"fractions": [0.01], "schemes": {"self": ["random:2"], "a": ["random:3"]}})
    with pytest.raises(ConfigError, match=r"^pruning\.ffn\.schemes: random of scheme 'a' asked with 2 and 3 sets$"):
        planning.pruning_jobs(cfg)
    cfg = small_config(heads={"fractions": [0.1], "schemes": {"self": ["random"], "b": ["random:5"]}})
    with pytest.raises(ConfigError, match=r"^pruning\.heads\.schemes: random of scheme 'b' asked with 3 and 5"):
        planning.pruning_jobs(cfg)


def test_jobs_are_computed_once_per_grid():
    cfg = small_config()
    jobs = planning.pruning_jobs(cfg)
    assert planning.pruning_jobs(copy.deepcopy(cfg)) is jobs  # the same grid: the cached jobs
    other = small_config(random_sets=7)
    assert planning.pruning_jobs(other) is not jobs
    assert {j.n_sets for j in planning.pruning_jobs(other) if j.unit_type == "head"} == {7}
    reordered = small_config()
    reordered["datasets"] = {"c": {"role": "ood"}, "a": {}, "b": {}}  # job order follows the dataset order
    assert planning.pruning_jobs(reordered)[0].dataset == "c"


def test_selection_sets_lookup_and_files():
    cfg = small_config()
    jobs = planning.pruning_jobs(cfg)
    assert planning.selection_sets(jobs, "ffn", "a", "random", "0.01") == 4
    assert planning.selection_sets(jobs, "ffn", "loo-b", "random_layer_matched", "0.05") == 2
    assert planning.selection_sets(jobs, "head", "c", "random", "0.1") == 3
    assert planning.selection_sets(jobs, "ffn", "a", "nig_top", "0.05") == 1
    assert planning.selection_sets(jobs, "head", "a", "random", "0.01") == 1  # no job reads it
    files = planning.selection_files(cfg)
    # ffn: (self nig_top, self random, loo rlm) x 3 datasets x 2 fractions + ood x 2 fractions; heads: 3
    assert len(files) == 3 * 3 * 2 + 2 + 3 and files == sorted(files)
    assert "results/small/sets/ffn/loo-a/random_layer_matched/0.05.json" in files
    selected = planning.selection_files(cfg, selected_only=True)
    assert len(selected) == 3 * 2 + 2 and not [f for f in selected if "/random" in f]
    outputs = planning.pruning_outputs(cfg, "c")
    assert len(outputs) == 4 * 2 * 2 + 1 and outputs[0] == "results/small/pruning/c/ffn/c/nig_top/0.01.json"
    assert outputs[-1] == "results/small/pruning/c/head/c/random/0.1.json"
    assert planning.scheme_members(cfg, "loo-b") == ["a", "c"]


@pytest.mark.parametrize("name,prune,select", [("ci.yaml", (52, 16), (25, 10)), ("config.yaml", (20, 6), (17, 6))])
def test_shipped_configs_plan_the_dry_run_job_counts(name, prune, select):
    """The prune / select_units job counts of ``snakemake -n`` (main, companion) from the config alone."""
    cfg = yaml.safe_load((REPO / "config" / name).read_text())
    companion = planning.companion_config(cfg)
    for study, n_prune, n_select in zip((cfg, companion), prune, select):
        assert len(planning.pruning_jobs(study)) == n_prune
        assert len(planning.selection_files(study)) == n_select


def test_companion_config_merges_over_the_main_config():
    cfg = small_config()
    cfg["companion"] = {"model": {"source": "pypi:bi", "kind": "bi_encoder"}, "pruning": {"random_sets": 1}}
    before = copy.deepcopy(cfg)
    comp = planning.companion_config(cfg)
    assert cfg == before  # the main config is left as it is
    assert comp["name"] == "small-companion" and comp["companion"] is None
    assert comp["model"] == {"source": "pypi:bi", "finetune": False, "kind": "bi_encoder"}  # merged key by key
    assert comp["pruning"]["random_sets"] == 1 and comp["pruning"]["layer_matched_sets"] == 2
    assert comp["pruning"]["ffn"] == cfg["pruning"]["ffn"]
    cfg["companion"]["name"] = "{name}-bi"
    assert planning.companion_config(cfg)["name"] == "small-bi"
    cfg["companion"]["pruning"] = {"parts": ["query"]}  # lists replace
    assert planning.companion_config(cfg)["pruning"]["parts"] == ["query"]
    assert planning.companion_config(small_config()) is None
    assert planning.companion_config({**small_config(), "companion": None}) is None
    assert planning.deep_merge({"a": {"b": 1, "c": {"d": 2}}}, {"a": {"c": {"e": 3}}, "f": 4}) == {
        "a": {"b": 1, "c": {"d": 2, "e": 3}}, "f": 4}


def test_companion_config_errors():
    cfg = {**small_config(), "companion": {"name": "{name}"}}
    with pytest.raises(ConfigError, match="^companion.name must differ from name$"):
        planning.companion_config(cfg)
    cfg = {**small_config(), "companion": {"datasets": {"d": {}}}}  # merged: a, b, c, d
    with pytest.raises(ConfigError, match="^companion must keep the main study's datasets$"):
        planning.companion_config(cfg)


@pytest.mark.parametrize("argv,expected", [
    (["-n"], True),
    (["-np", "--cores", "2"], True),
    (["--cores", "2", "-pn"], True),
    (["--dry-run"], True),
    (["--dryrun", "--configfile", "config/ci.yaml"], True),
    (["--dag"], True),
    (["--lint=json"], True),
    (["--unlock"], True),
    (["--list-rules"], True),
    (["--cores", "2"], False),
    (["--configfile", "config/nfcorpus.yaml", "-p"], False),
    (["--forceall", "-j2"], False),
    (["--notemp"], False),
    ([], False),
])
def test_planning_only(argv, expected):
    assert planning.planning_only(argv) is expected


def test_shard_ids():
    assert planning.shard_ids({"pairs": {"per_class": 5, "shard_size": 4}}) == [0, 1, 2]  # 10 pairs
    assert planning.shard_ids({"pairs": {"per_class": 4, "shard_size": 4}}) == [0, 1]
    assert planning.shard_ids({"pairs": {"per_class": 16, "shard_size": 32}}) == [0]
    assert planning.shard_ids({"pairs": {"per_class": 17, "shard_size": 32}}) == [0, 1]


def test_config_checks_and_fractions():
    planning.check_schemes(small_config())
    planning.check_finetune(small_config())
    no_ood = small_config()
    no_ood["datasets"]["c"]["role"] = "in_domain"
    with pytest.raises(ConfigError, match="^pruning.ffn.schemes: scheme 'ood' needs an in_domain and an ood dataset$"):
        planning.check_schemes(no_ood)
    bad = small_config(heads={"fractions": [0.1], "schemes": {"fusion-xyz": ["nig_top"]}})
    with pytest.raises(ConfigError, match="^pruning.heads.schemes: unknown scheme 'fusion-xyz'"):
        planning.check_schemes(bad)
    alone = small_config(ffn={"fractions": [0.01], "schemes": {"loo": ["nig_top"]}})
    alone["datasets"] = {"a": {}}
    with pytest.raises(ConfigError, match="leave-one-collection-out needs at least two datasets"):
        planning.check_schemes(alone)
    tune = small_config()
    tune["model"].update(finetune=True, kind="bi_encoder")
    with pytest.raises(ConfigError, match="^model.finetune fine-tunes cross-encoders; model.kind is bi_encoder$"):
        planning.check_finetune(tune)
    tune["model"]["kind"] = "auto"
    tune["datasets"] = {"c": {"role": "ood"}}
    with pytest.raises(ConfigError, match="^model.finetune is true but no dataset has role in_domain$"):
        planning.check_finetune(tune)
    cfg = small_config()
    assert planning.summary_fractions(cfg) == {"ffn": [0.01, 0.02, 0.05], "head": [0.1]}
    assert planning.claim_fraction(cfg) == 0.01
    assert planning.claim_fraction(small_config(claim_fraction=0.05)) == 0.05
    assert planning.claim_fraction(small_config(ffn={"schemes": {}})) == 0.01


def test_workflow_modules_import_without_torch():
    code = ("import sys, irneurons.workflow.planning, irneurons.workflow.jobs; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_load_job_model_reads_the_jobs_model_record(tmp_path, one_thread):
    """The scripts' preamble: model.json -> the model on the job's device, its tokenizer with the record's
    query share, and the numerics record of the job's bf16 setting."""
    import torch
    from types import SimpleNamespace

    from .conftest import tiny_cross_encoder
    from irneurons.rankers import encoding, loading
    from irneurons.workflow.jobs import job_device, load_job_model

    net, tok = tiny_cross_encoder(layers=2, d_ff=16)
    net.save_pretrained(tmp_path / "hf")
    tok.save_pretrained(tmp_path / "hf")
    loading.write_model_ref(tmp_path / "model.json", str(tmp_path / "hf"), {"max_length": 32, "max_query_share": 0.3})
    job = SimpleNamespace(input=SimpleNamespace(model=str(tmp_path / "model.json")), threads=1)
    loaded = load_job_model(job, bf16=False)
    assert loaded.device == job_device(job) == loading.pick_device(1)
    assert loaded.ref == loading.read_model_ref(tmp_path / "model.json") and loaded.ref["max_length"] == 32
    assert encoding.query_share(loaded.tokenizer) == 0.3
    assert loaded.numerics["bf16"] is False and loaded.numerics["bf16_setting"] == "false"
    assert loaded.numerics["device"] == loaded.device
    enc = tok(["wing flutter"], ["flutter of wings"], return_tensors="pt")
    with torch.no_grad():
        expected = net.eval()(**enc).logits
        got = loaded.net.cpu()(**enc).logits
    torch.testing.assert_close(got, expected)  # the saved weights, not a fresh head
    net_, tokenizer, ref, device, num = load_job_model(job, bf16=None, ref={**loaded.ref, "max_query_share": 0.5})
    assert num is None and ref["max_query_share"] == 0.5 and encoding.query_share(tokenizer) == 0.5
