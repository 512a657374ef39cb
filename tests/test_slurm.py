"""The ci config through a real one-node SLURM (.ci/slurm-up.sh: munge, slurmctld, slurmd, slurmdbd, 2 fake
GPUs) with profiles/slurm; compared with a local run of the same config.

It installs system packages and starts daemons, so it runs only when IRNEURONS_SLURM_TEST=1 (``.ci/run`` sets
it) and root and apt-get are available; otherwise it is skipped with the reason.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .test_workflow import REPO, SEED_DIR, assert_same_neurons, ci_config, neuron_means, outcome, rule_counts

WHY_NOT = (
    "changes the host (apt-get, daemons): set IRNEURONS_SLURM_TEST=1 to run it"
    if os.environ.get("IRNEURONS_SLURM_TEST") != "1"
    else "needs root to start SLURM daemons" if os.geteuid() != 0
    else "needs apt-get (or slurmctld already installed)" if not (shutil.which("apt-get") or shutil.which("slurmctld"))
    else f"offline dataset copies not found at {SEED_DIR}" if not SEED_DIR.is_dir()
    else None
)

# Fit the profile's per-rule requests to this 2-CPU node (cluster-specific values are the user's to set).
GPU_RULES = ("finetune", "rerank", "attribute", "prune", "prune_unpruned", "neuron_tokens")
NODE_FIT = [
    "--set-threads", *[f"{r}=1" for r in GPU_RULES + ("token_attributions",)],
    "--set-resources", *[f"{r}:cpus_per_gpu=1" for r in GPU_RULES], *[f"{r}:mem_mb=3000" for r in GPU_RULES],
    "dataset:mem_mb=3000", "candidates:mem_mb=3000", "aggregate:mem_mb=3000",
]


@pytest.fixture(scope="module")
def slurm_cluster():
    env = {**os.environ, "SLURM_FAKE_GPUS": "2", "SLURM_WITH_DBD": "1"}
    up = subprocess.run(["bash", str(REPO / ".ci" / "slurm-up.sh")], env=env, capture_output=True, text=True, timeout=900)
    try:
        assert up.returncode == 0, f"slurm-up failed:\n{up.stdout[-2000:]}\n{up.stderr[-3000:]}"
        yield
    finally:
        subprocess.run(["bash", str(REPO / ".ci" / "slurm-down.sh")], timeout=300)


def snakemake(workdir: Path, *args):
    cfg = workdir / "config.yaml"
    # the companion bi-encoder is left out: the same rules, prefixed, already covered by the local ci run
    cfg.write_text(yaml.safe_dump(ci_config(companion=None)))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(cfg), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


LOCAL_RULES = {"all", "study", "select_units", "pruning_table", "claims", "figure_tables", "plot_layers", "plot_overlap",
               "plot_pruning", "plot_completeness", "plot_tokens", "tables_report", "explorer"}


def sacct_jobs() -> list[dict]:
    out = subprocess.run(["sacct", "-X", "-a", "--parsable2", "--noheader",
                          "--format=JobIDRaw,State,AllocTRES%80,Comment%200"],
                         capture_output=True, text=True, check=True).stdout
    return [dict(zip(("id", "state", "tres", "comment"), line.split("|"))) for line in out.splitlines() if line]


@pytest.mark.slow
@pytest.mark.skipif(WHY_NOT is not None, reason=f"SLURM integration test: {WHY_NOT}")
def test_ci_config_under_slurm_equals_local(tmp_path, slurm_cluster):
    local, cluster = tmp_path / "local", tmp_path / "slurm"
    local.mkdir()
    cluster.mkdir()
    snakemake(local, "--cores", "2")
    planned = rule_counts(snakemake(cluster, "-n", "--quiet", "rules"))
    snakemake(cluster, "--profile", str(REPO / "profiles" / "slurm"), "--jobs", "4", "--slurm-no-account",
              "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1",
              "--slurm-keep-successful-logs", *NODE_FIT)
    jobs = sacct_jobs()
    assert jobs and all(j["state"] == "COMPLETED" for j in jobs), [j for j in jobs if j["state"] != "COMPLETED"]
    ran = {}
    for j in jobs:
        rule = j["comment"].removeprefix("rule_").split("_wildcards_")[0]
        ran.setdefault(rule, []).append(j)
    # every job of the DAG except the local rules ran under SLURM, and GPU rules were allocated a (fake) GPU
    expected = {r: n for r, n in planned.items() if r not in LOCAL_RULES}
    assert {r: len(js) for r, js in ran.items()} == expected
    for rule in GPU_RULES:
        assert all("gres/gpu=1" in j["tres"] for j in ran[rule]), rule
    # same outputs as the local run
    assert outcome(cluster / "results" / "ci") == outcome(local / "results" / "ci")
    assert_same_neurons(neuron_means(cluster / "results" / "ci"), neuron_means(local / "results" / "ci"))
