"""Workflow-level tests: lint, dry-runs, one-line errors for bad config, and the tiny ci run end to end."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SEED_DIR = (REPO / ".." / "shared" / "ir_datasets").resolve()
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]


def snakemake(workdir, *args, config=None, check=True):
    cmd = SNAKEMAKE + ["--directory", str(workdir)]
    if config is not None:
        path = Path(workdir) / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        cmd += ["--configfile", str(path)]
    proc = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def ci_config(**changes):
    cfg = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())
    cfg["ir_datasets"]["seed_dir"] = str(SEED_DIR)
    cfg.update(changes)
    return cfg


def test_lint_is_clean(tmp_path):
    proc = snakemake(REPO, "--lint")
    assert "Congratulations" in proc.stdout + proc.stderr


@pytest.mark.parametrize("configfile", ["config.yaml", "ci.yaml"])
def test_dry_run_plans_every_stage(tmp_path, configfile):
    cfg = yaml.safe_load((REPO / "config" / configfile).read_text())
    out = snakemake(tmp_path, "-n", config=cfg).stdout
    for rule in ("dataset", "candidates", "pairs", "finetune", "rerank", "baseline_metrics", "baseline_table"):
        assert f"rule {rule}:" in out


def test_ready_cross_encoder_skips_finetuning(tmp_path):
    cfg = ci_config()
    cfg["model"] = {"source": "cross-encoder/ms-marco-MiniLM-L-12-v2", "finetune": False}
    out = snakemake(tmp_path, "-n", config=cfg).stdout
    assert "rule model_reference:" in out and "rule finetune:" not in out


def _bad(cfg, tmp_path):
    proc = snakemake(tmp_path, "-n", config=cfg, check=False)
    assert proc.returncode != 0
    return proc.stdout + proc.stderr


BAD_CONFIGS = [
    (lambda c: c.update(name="a/b"), "config error at name: 'a/b' does not match"),
    (lambda c: c["datasets"]["cranfield"].update(depth=0), "config error at datasets.cranfield.depth: 0 is less than"),
    (lambda c: c["datasets"]["vaswani"].update(role="train"), "config error at datasets.vaswani.role: 'train' is not one of"),
    (lambda c: c["model"].update(target="logits"), "config error at model.target: 'logits' is not one of"),
    (lambda c: c["finetune"].update(stepz=3), "config error at finetune: Additional properties are not allowed ('stepz'"),
    (lambda c: c["datasets"]["cranfield"].pop("source"), "config error at datasets.cranfield: 'source' is a required property"),
    (lambda c: c["datasets"]["cranfield"].update(source="cranfeld"), "dataset 'cranfield': unknown ir_datasets id 'cranfeld'"),
    (lambda c: c["datasets"]["vaswani"].update(source="local:/no/such/folder"), "dataset 'vaswani': local folder '/no/such/folder' does not exist"),
    (lambda c: c["datasets"]["vaswani"].update(source="msmarco-passage/eval/small"), "ir_datasets id 'msmarco-passage/eval/small' has no qrels"),
    (lambda c: c["model"].update(source="./models/missing"), "model './models/missing': path does not exist"),
    (lambda c: c["datasets"]["cranfield"].update(split={"train": 0.8, "attribution": 0.5}), "dataset 'cranfield': split train + attribution exceeds 1"),
]


@pytest.mark.parametrize("mutate,message", BAD_CONFIGS)
def test_bad_config_fails_at_parse_time_naming_the_key(tmp_path, mutate, message):
    cfg = ci_config()
    mutate(cfg)
    out = _bad(cfg, tmp_path)
    assert message in out
    assert not (tmp_path / "results").exists()  # nothing ran


@pytest.mark.slow
@pytest.mark.skipif(not SEED_DIR.is_dir(), reason=f"offline dataset copies not found at {SEED_DIR}")
def test_ci_config_end_to_end(tmp_path):
    snakemake(tmp_path, "--cores", "2", config=ci_config())
    res = tmp_path / "results" / "ci"
    table = pd.read_csv(res / "tables" / "baseline.csv")
    assert set(table["dataset"]) == {"cranfield", "vaswani"} and len(table) == 6
    assert table[["ndcg@10", "mrr@10", "map"]].notna().all().all()
    metrics = json.loads((res / "metrics" / "cranfield" / "baseline.json").read_text())
    assert metrics["provenance"]["versions"]["torch"].startswith("2.13.0")
    queries = pd.read_parquet(res / "data" / "cranfield" / "queries.parquet")
    assert queries["split"].value_counts().to_dict() == {"train": 10, "test": 6, "attribution": 4}
    pairs_cran = pd.read_parquet(res / "data" / "cranfield" / "pairs.parquet")
    pairs = pd.read_parquet(res / "data" / "vaswani" / "pairs.parquet")
    assert set(pairs["qid"]) <= set(pd.read_parquet(res / "data" / "vaswani" / "queries.parquet").query("split == 'attribution'")["qid"])
    assert pairs["label"].value_counts().to_dict() == {1: 4, 0: 4}
    ref = json.loads((res / "model" / "model.json").read_text())
    assert ref["finetuned"] and (tmp_path / ref["source"] / "config.json").is_file()
    assert (res / "runs" / "cranfield" / "cross_encoder.trec").read_text().count("\n") == 6 * 10
    shard, meta = __import__("irneurons.nig", fromlist=["load_shard"]).load_shard(res / "nig" / "cranfield" / "shard-0.npz")
    assert shard["ffn"].shape == (4, 6, 6, 1536) and shard["heads"].shape == (4, 6, 6, 12)
    assert meta["pair_ids"] == pairs_cran.query("shard == 0")["pair_id"].tolist() and meta["seed"] == 0
    neurons = pd.read_parquet(res / "neurons" / "cranfield.parquet")
    assert set(neurons["class"]) == {"relevant", "non_relevant", "all"} and (neurons.query("`class` == 'all'")["n"] == 8).all()
    # a finished run has nothing left to do
    assert "Nothing to be done" in snakemake(tmp_path, "-n", config=ci_config()).stdout
