"""The baseline table labels the re-ranker's row by the model's kind (the scored files keep their column names)."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from irneurons import testing
from irneurons.errors import RankerError
from irneurons.rankers import loading
from irneurons.retrieval import evaluation as evaluate
from irneurons.study import comparison as compare

REPO = Path(__file__).resolve().parents[1]


def record(dataset: str, ndcg: tuple[float, float, float]) -> dict:
    """A baseline metrics record (as baseline_metrics.py writes it) with the three systems' nDCG@10."""
    test = {"delta": 0.0, "t_p": 0.5, "wilcoxon_p": 0.5}
    systems = {s: {"mean": {m: v for m in evaluate.MEASURES}, "vs_first_stage": {"ndcg@10": test}}
               for s, v in zip(("first_stage", "cross_encoder", "fusion"), ndcg)}
    return {"dataset": dataset, "n_queries": 3, "systems": systems}


RECORDS = [record("cranfield", (0.25, 0.16, 0.23)), record("vaswani", (0.43, 0.40, 0.42))]
COMPANION = [record("cranfield", (0.25, 0.233, 0.256)), record("vaswani", (0.43, 0.404, 0.417))]


@pytest.mark.parametrize("kind, model, fusion", [
    ("cross_encoder", "cross-encoder", "fusion z(BM25)+z(CE)"),
    ("bi_encoder", "bi-encoder", "fusion z(BM25)+z(bi-encoder)"),
    ("t5", "monoT5", "fusion z(BM25)+z(monoT5)"),
    ("causal_lm", "LLM re-ranker", "fusion z(BM25)+z(LLM re-ranker)"),
])
def test_the_model_row_is_labelled_by_kind(kind, model, fusion):
    table = evaluate.baseline_table(RECORDS, kind=kind)
    assert table["system"].tolist() == ["BM25 (first stage)", model, fusion] * 2
    assert table.loc[table["system"] == model, "ndcg@10"].tolist() == [0.16, 0.40]
    assert table.loc[table["system"] == fusion, "ndcg@10"].tolist() == [0.23, 0.42]


def test_a_cross_encoder_table_is_unchanged_and_a_bad_kind_is_one_line():
    assert evaluate.baseline_table(RECORDS).equals(evaluate.baseline_table(RECORDS, kind="cross_encoder"))
    with pytest.raises(RankerError, match=r"^model kind 'colbert' is not one of cross_encoder, bi_encoder, t5, "
                                          r"causal_lm$"):
        evaluate.baseline_table(RECORDS, kind="colbert")


def test_the_kind_comes_from_model_json_or_is_detected_from_the_model(tmp_path):
    assert evaluate.model_kind({"source": "whatever", "kind": "t5"}) == "t5"
    ce = testing.build("bert")  # *ForSequenceClassification: a cross-encoder when detected
    ce.save_pretrained(tmp_path / "ce")
    bare = testing.build("bert", "bi_encoder")  # a bare encoder (BertModel): a bi-encoder when detected
    bare.save_pretrained(tmp_path / "bare")
    assert evaluate.model_kind({"source": str(tmp_path / "ce"), "kind": "auto"}) == "cross_encoder"
    assert evaluate.model_kind({"source": str(tmp_path / "bare"), "kind": None}) == "bi_encoder"
    assert evaluate.model_kind({"source": loading.PYPI_MINILM, "kind": "auto"}) == "bi_encoder"


def test_the_workflow_script_labels_a_bi_encoder_study(tmp_path):
    """scripts/baseline_table.py as the baseline_table rule runs it, for a study with model.kind: bi_encoder."""
    paths = []
    for rec in COMPANION:
        paths.append(tmp_path / f"{rec['dataset']}.json")
        paths[-1].write_text(json.dumps(rec))
    loading.write_model_ref(tmp_path / "model.json", loading.PYPI_MINILM, {"kind": "bi_encoder"})
    job = tmp_path / "job.py"
    job.write_text(f"""
import runpy
class NS:
    def __init__(self, **kw):
        self.__dict__.update(kw)
snakemake = NS(input=NS(metrics={[str(p) for p in paths]!r}, model={str(tmp_path / 'model.json')!r}),
               output=NS(csv={str(tmp_path / 'baseline.csv')!r}, md={str(tmp_path / 'baseline.md')!r}),
               log=[{str(tmp_path / 'job.log')!r}])
runpy.run_path({str(REPO / 'scripts' / 'baseline_table.py')!r}, init_globals={{"snakemake": snakemake}})
""")
    proc = subprocess.run([sys.executable, str(job)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (tmp_path / "job.log").read_text()[-2000:]
    table = pd.read_csv(tmp_path / "baseline.csv")
    assert table["system"].tolist() == ["BM25 (first stage)", "bi-encoder", "fusion z(BM25)+z(bi-encoder)"] * 2
    assert "| vaswani | bi-encoder | 3 | 0.4040 |" in (tmp_path / "baseline.md").read_text()
    # the comparison of the main cross-encoder with this companion reads both model rows
    ndcg = compare.ndcg_table(evaluate.baseline_table(RECORDS), table, "main (cross_encoder)", "comp (bi_encoder)")
    assert ndcg.to_dict("list") == {"dataset": ["cranfield", "vaswani"], "BM25": [0.25, 0.43],
                                    "main (cross_encoder)": [0.16, 0.40], "comp (bi_encoder)": [0.233, 0.404]}
