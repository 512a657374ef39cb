"""The irneurons command and the README's API / CLI examples, run as written."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from irneurons import cli
from irneurons.retrieval import evaluation as evaluate
from irneurons.attribution.conductance import NeuronConductance
from irneurons.retrieval.datasets import DatasetSpec, load_collection
from irneurons.study.pruning import pruned_scores_many

from .conftest import DOCS, QRELS, QUERIES, tiny_cross_encoder

REPO = Path(__file__).resolve().parents[1]
IRNEURONS = Path(sys.executable).parent / "irneurons"  # the pyproject entry point of this venv


def readme_block(tag: str, lang: str) -> str:
    """The code block that follows ``<!-- tested: tag -->`` in the README."""
    text = (REPO / "README.md").read_text()
    match = re.search(rf"<!-- tested: {tag} -->\n```{lang}\n(.*?)```", text, re.S)
    assert match, f"README has no tested {tag} block"
    return match.group(1)


def readme_commands(tag: str) -> list[str]:
    return [line for line in readme_block(tag, "bash").splitlines() if line.strip()]


def run_cli(*args, cwd=REPO, env=None):
    return subprocess.run([str(IRNEURONS), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    model, tok = tiny_cross_encoder()
    folder = tmp_path_factory.mktemp("tiny") / "model"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_readme_api_example_runs_as_written():
    proc = subprocess.run([sys.executable, "-c", readme_block("api", "python")], capture_output=True, text=True,
                          cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "completeness: 2 of 2 pairs within nig.max_cut_relerr=0.25" in proc.stdout
    assert "(2, 1536)" in proc.stdout and "unit_id" in proc.stdout
    assert Path("/tmp/irneurons-attr.npz").is_file()


def test_readme_cli_commands_run_as_written_on_a_fresh_clone():
    explain, prune = readme_commands("cli")
    out = subprocess.run(explain, shell=True, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(r"F\(x\) = [+-]\d+\.\d+   F\(x'\) = [+-]\d+\.\d+", out.stdout)
    assert re.search(r"completeness: .* \(within nig.max_cut_relerr = 25%\)", out.stdout)
    assert "query_cls" in out.stdout and "ffn:" in out.stdout and "head:" in out.stdout
    out = subprocess.run(prune, shell=True, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "cranfield: 5 judged queries, 50 pairs" in out.stdout and "3 FFN neurons, 0 heads" in out.stdout
    assert re.search(r"pruned − unpruned ndcg@10: [+-]\d\.\d{4} \(paired t p = ", out.stdout)


def test_explain_json_equals_the_api(tiny_folder):
    q, p = "wing flutter", "flutter of swept wings in transonic flow"
    proc = run_cli("explain", "--model", str(tiny_folder), "--query", q, "--passage", p, "--steps", "8", "--json",
                   "--device", "cpu", "--top", "4")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    model, tok, _ = cli.load_model(str(tiny_folder), "cpu")
    attr = NeuronConductance(model, tok, steps=8).attribute(q, p)
    assert out["f_x"] == pytest.approx(float(attr.f_x[0]), rel=1e-5)
    assert out["f_baseline"] == pytest.approx(float(attr.f_baseline[0]), rel=1e-5)
    assert out["completeness"]["ok"] is True and len(out["completeness"]["per_layer"]) == 2
    assert list(out["top"]) == ["total", "cls", "query", "sep1", "passage", "sep2"]
    assert [r["unit_id"] for r in out["top"]["query"]["ffn"]] == attr.top(4, "ffn", "query")["unit_id"].tolist()
    text = run_cli("explain", "--model", str(tiny_folder), "--query", q, "--passage", p, "--steps", "8",
                   "--parts", "query,passage", "--top", "2").stdout
    assert "F(x) - F(x')" in text and text.count("ffn:") == 4


def test_errors_are_one_line_with_conventional_exit_codes(tiny_folder, tmp_path):
    proc = run_cli("explain", "--model", "./no/such/model", "--query", "q", "--passage", "p")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == "irneurons: error: model './no/such/model': path does not exist"
    proc = run_cli("explain", "--model", str(tiny_folder), "--query", "q", "--passage", "p", "--parts", "body")
    assert proc.returncode == 1 and "--parts: 'body' is not a part" in proc.stderr
    proc = run_cli("explain", "--model", str(tiny_folder), "--query", "q")
    assert proc.returncode == 2 and "the following arguments are required: --passage" in proc.stderr
    bad_run = tmp_path / "bad.trec"
    bad_run.write_text("1 Q0 d1 1\n")
    proc = run_cli("prune", "--model", str(tiny_folder), "--set", "ffn:0:1", "--run", str(bad_run), "--dataset", "x")
    assert proc.returncode == 1 and "line 1: expected 'qid Q0 doc_id rank score tag'" in proc.stderr
    proc = run_cli("info", str(tmp_path))
    assert proc.returncode == 1 and "not a study folder" in proc.stderr
    for command in ("explain", "prune", "info"):
        help_text = run_cli(command, "--help")
        assert help_text.returncode == 0 and "usage: irneurons " + command in help_text.stdout
    top = run_cli("--help").stdout
    assert all(c in top for c in ("explain", "prune", "info", "exit codes"))


def test_prune_rescores_a_run_and_reports_the_change(tiny_folder, beir_folder, tmp_path):
    run = tmp_path / "run.trec"
    docs = sorted(DOCS)
    run.write_text("".join(f"{q} Q0 {d} {r + 1} {10 - r} bm25\n" for q in QUERIES for r, d in enumerate(docs)))
    set_path = tmp_path / "set.json"
    set_path.write_text(json.dumps({"unit_type": "ffn", "sets": [[[0, 3], [1, 5], [1, 9]]]}))
    proc = run_cli("prune", "--model", str(tiny_folder), "--set", str(set_path), "--run", str(run), "--dataset",
                   f"local:{beir_folder}", "--depth", "4", "--json", "--device", "cpu", "--metric", "map")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["units"] == 3 and out["pairs"] == 4 * len(QUERIES) and out["queries"] == 4
    # the same numbers by hand: top 4 per query, scored unpruned and pruned, MAP per judged query
    model, tok, _ = cli.load_model(str(tiny_folder), "cpu")
    table = pd.DataFrame([(q, d, 10 - r) for q in QUERIES for r, d in enumerate(docs) if r < 4],
                         columns=["qid", "doc_id", "score"])
    coll = load_collection(DatasetSpec(name="tiny", source=f"local:{beir_folder}"))  # texts as the re-ranker reads them
    texts = coll.docs.set_index("doc_id")["text"]
    un, pr = pruned_scores_many(model, tok, [QUERIES[q] for q in table["qid"]], texts[table["doc_id"]].tolist(),
                                [{}, {"ffn": [(0, 3), (1, 5), (1, 9)]}], max_length=128)
    qrels = evaluate.qrels_dict(pd.DataFrame(QRELS, columns=["qid", "doc_id", "gain"]))
    maps = [evaluate.per_query_metrics(evaluate.run_dict(table.assign(score=s)), qrels, ("map",))["map"].mean()
            for s in (un, pr)]
    assert out["model"] == pytest.approx(maps[0]) and out["pruned"] == pytest.approx(maps[1])
    assert out["delta"] == pytest.approx(maps[1] - maps[0])
    assert not np.allclose(un, pr)


def test_info_summarises_a_study_folder(tmp_path):
    root = tmp_path / "results" / "toy"
    (root / "model").mkdir(parents=True)
    (root / "model" / "model.json").write_text(json.dumps({"source": "m", "kind": "auto", "finetuned": True,
                                                           "provenance": {"base_model": "pypi:x"}}))
    (root / "data" / "cran").mkdir(parents=True)
    pd.DataFrame({"pair_id": ["1:a", "1:b", "2:c"], "label": [1, 0, 1]}).to_parquet(root / "data" / "cran" / "pairs.parquet")
    (root / "neurons").mkdir()
    pd.DataFrame({"ffn_cut_relerr_median": [0.01, 0.03, 0.02], "over_threshold": [False, True, False]}).to_csv(
        root / "neurons" / "cran_completeness.csv", index=False)
    (root / "tables").mkdir()
    pd.DataFrame({"claim": ["exist"], "collection": ["cran"], "verdict": ["supported"]}).to_csv(
        root / "tables" / "claims.csv", index=False)
    out = json.loads(run_cli("info", str(root), "--json").stdout)
    assert out["datasets"]["cran"] == {"attribution_pairs": 3, "relevant": 2, "completeness_median": 0.02,
                                       "over_threshold": 1}
    assert out["claims"] == [{"claim": "exist", "collection": "cran", "verdict": "supported"}]
    text = run_cli("info", str(root)).stdout
    assert "study toy: model m (auto, fine-tuned from pypi:x)" in text and "supported" in text


def check_readme_study_commands(study: Path, cache: Path, workdir: Path) -> None:
    """The README's after-``make run`` commands, verbatim, with ``results/default`` a finished study (the ci one,
    called from the ci end-to-end test) and ``cache`` its ir_datasets home. The pruned nDCG@10 must be the
    workflow's own number for that set (the shipped run has the study's depth)."""
    import os

    (workdir / "results").mkdir(parents=True)
    (workdir / "results" / "default").symlink_to(study)
    (workdir / ".venv").symlink_to(Path(sys.executable).parents[1])
    (workdir / "config").symlink_to(REPO / "config")
    env = {**os.environ, "IR_DATASETS_HOME": str(cache)}
    explain, prune, info = readme_commands("cli-study")
    outs = []
    for line in (explain, prune, info):
        proc = subprocess.run(line, shell=True, capture_output=True, text=True, cwd=workdir, env=env, timeout=900)
        assert proc.returncode == 0, f"{line}\n{proc.stderr[-2000:]}"
        outs.append(proc.stdout)
    assert re.search(r"completeness: median-over-layers FFN relative cut error .* \(within nig.max_cut_relerr", outs[0])
    own = json.loads((study / "pruning" / "cranfield" / "ffn" / "cranfield" / "nig_top" / "0.01.json").read_text())
    unpruned = json.loads((study / "pruning" / "cranfield" / "unpruned.json").read_text())
    row = re.search(r"model, (\d+) units pruned\s+(\d\.\d{4})\s+([+-]\d\.\d{4})", outs[1])
    assert row and int(row.group(1)) == own["count"]
    # the CLI scores in fp32: the same number as a study that pruned in fp32 (ci and the default do), to print precision
    tol = 0.02 if own["provenance"]["numerics"]["bf16"] else 6e-5
    assert float(row.group(2)) == pytest.approx(own["sets"][0]["mean"]["ndcg@10"], abs=tol)
    assert float(row.group(3)) == pytest.approx(own["sets"][0]["mean"]["ndcg@10"] - unpruned["mean"]["ndcg@10"], abs=2 * tol)
    assert "study default: model" in outs[2] and "exist" in outs[2]


def test_prune_units_the_model_lacks_are_one_line_before_any_data(tiny_folder, tmp_path, capsys):
    """Ids, a set JSON: a unit beyond the model's layers / FFN width / heads, or of an unknown type, is one line
    naming it and the valid range (exit 1), before the dataset is even looked up."""
    run = tmp_path / "run.trec"
    run.write_text("1 Q0 d1 1 2.0 bm25\n1 Q0 d2 2 1.0 bm25\n")
    set_path = tmp_path / "edited.json"
    set_path.write_text(json.dumps({"unit_type": "head", "sets": [[[0, 1], [1, 4]]]}))
    cases = {  # the tiny model: layers 0-1, 64 FFN neurons, 4 heads
        "ffn:99:1": "unit ffn:99:1: layer 99 out of range, the model has layers 0-1",
        "ffn:0:99999": "unit ffn:0:99999: neuron 99999 out of range, layer 0 has FFN neurons 0-63",
        "head:0:99": "unit head:0:99: head 99 out of range, layer 0 has heads 0-3",
        "ffn:1:63,neuron:0:1": "unit neuron:0:1: unknown unit type 'neuron', valid: ffn, head",
        str(set_path): f"unit set {set_path}: unit head:1:4: head 4 out of range, layer 1 has heads 0-3",
    }
    for units, message in cases.items():
        code = cli.main(["prune", "--model", str(tiny_folder), "--set", units, "--run", str(run),
                         "--dataset", "no-such-dataset", "--device", "cpu"])
        err = capsys.readouterr().err
        assert code == 1 and err.strip().splitlines() == [f"irneurons: error: {message}"], (units, err)
    proc = run_cli("prune", "--model", str(tiny_folder), "--set", "ffn:2:0", "--run", str(run), "--dataset", "x")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["irneurons: error: unit ffn:2:0: layer 2 out of range, the model has "
                                                "layers 0-1"]


def test_transformers_stays_off_stderr_unless_verbose(tiny_folder, tmp_path):
    args = ("explain", "--model", str(tiny_folder), "--query", "wing flutter", "--passage", "flutter of wings",
            "--steps", "2", "--device", "cpu")
    quiet = run_cli(*args)
    assert quiet.returncode == 0 and quiet.stderr == "" and "F(x) = " in quiet.stdout
    loud = run_cli(*args, "--verbose")
    assert loud.returncode == 0 and "Loading weights" in loud.stderr  # what the quiet run hid
    assert loud.stdout.splitlines()[:2] == quiet.stdout.splitlines()[:2]
    proc = run_cli("info", str(tmp_path), "--verbose")  # every subcommand takes --verbose: errors with the traceback
    assert proc.returncode == 1 and "Traceback" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("irneurons: error: ") and "not a study folder" in proc.stderr
