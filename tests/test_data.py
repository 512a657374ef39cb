import subprocess
import sys

import pandas as pd
import pytest

from irneurons.retrieval import datasets as data
from irneurons.retrieval import firststage
from irneurons.retrieval.datasets import DataError, DatasetSpec

CRANFIELD_GAINS = {1: 4, 2: 3, 3: 2, 4: 1, -1: 0}


def test_grade_map_on_cranfield_format(cranfield_home, tmp_path):
    # ir_datasets binds its home at import time, so load in a fresh interpreter.
    code = f"""
from irneurons.retrieval import datasets as data
data.seed_ir_datasets_home({str(tmp_path / 'cache')!r}, {str(cranfield_home)!r})
spec = data.DatasetSpec(name='cranfield', source='cranfield', grade_map={CRANFIELD_GAINS!r})
c = data.load_collection(spec)
print(sorted(zip(c.qrels.qid, c.qrels.doc_id, c.qrels.grade, c.qrels.gain)))
print(sorted(c.queries.qid), len(c.docs), c.docs.set_index('doc_id').text['2'])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == str(
        [("1", "1", 4, 1), ("1", "2", 1, 4), ("1", "3", -1, 0), ("2", "1", 3, 2), ("2", "3", 2, 3)]
    )
    # the title is not duplicated (Cranfield's text starts with it) and whitespace is collapsed
    assert out[1] == "['1', '2'] 3 heated aircraft models . similarity laws for aerothermoelastic testing ."
    assert (tmp_path / "cache" / "cranfield" / "cran.tar.gz").is_file()  # seeded copy, source untouched


def test_apply_gain_clips_negative_and_keeps_unmapped():
    q = pd.DataFrame({"qid": ["1"] * 4, "doc_id": list("abcd"), "grade": [1, 4, -1, 7]})
    assert data.apply_gain(q, CRANFIELD_GAINS)["gain"].tolist() == [4, 1, 0, 7]
    assert data.apply_gain(q, {})["gain"].tolist() == [1, 4, 0, 7]


def test_split_is_deterministic_and_partitions():
    ids = [str(i) for i in range(1, 226)]
    a = data.split_queries(ids, 0.6, 0.1, seed=0)
    assert a == data.split_queries(list(reversed(ids)), 0.6, 0.1, seed=0)  # order of input irrelevant
    assert a != data.split_queries(ids, 0.6, 0.1, seed=1)
    counts = pd.Series(a).value_counts().to_dict()
    assert counts == {"train": 135, "test": 68, "attribution": 22}
    # same recipe as the fine-tuning probe: ids sorted as integers, shuffled with random.Random(0)
    import random

    order = sorted(ids, key=int)
    random.Random(0).shuffle(order)
    assert [q for q in order[:135]] == [q for q in order if a[q] == "train"]
    with pytest.raises(DataError):
        data.split_queries(ids, 0.8, 0.3, seed=0)


def test_beir_folder_and_pairs(beir_folder):
    spec = DatasetSpec(name="tiny", source=f"local:{beir_folder}")
    c = data.load_collection(spec)
    assert sorted(c.queries.qid) == ["1", "2", "3", "4"]
    assert c.docs.set_index("doc_id").text["d2"] == "title 1. heat transfer in laminar flow over a cone"
    assert c.qrels.set_index(["qid", "doc_id"]).gain[("4", "d6")] == 0
    # every doc is a candidate of every query (BM25 on 6 docs leaves some queries with too few)
    cand = pd.DataFrame([(q, d) for q in c.queries.qid for d in c.docs.doc_id], columns=["qid", "doc_id"])
    p1 = data.sample_pairs(cand, c.qrels, ["1", "2", "3", "4"], n_per_class=3, seed=0, shard_size=2)
    p2 = data.sample_pairs(cand, c.qrels, ["4", "3", "2", "1"], n_per_class=3, seed=0, shard_size=2)
    pd.testing.assert_frame_equal(p1, p2)
    assert p1["label"].tolist() == [1, 0, 1, 0, 1, 0]
    assert p1["shard"].tolist() == [0, 0, 1, 1, 2, 2]
    rel = set(zip(c.qrels.qid, c.qrels.doc_id))
    for q, d, label in zip(p1.qid, p1.doc_id, p1.label):
        # relevant pairs come from qrels with gain > 0; negatives are never judged (not even gain 0: d6 for q4)
        assert ((q, d) in rel) == bool(label)
        assert (q, d) != ("4", "d6")
    other = data.sample_pairs(cand, c.qrels, ["1", "2", "3", "4"], n_per_class=3, seed=1, shard_size=2)
    assert set(other.pair_id) != set(p1.pair_id) or len(p1) == 8  # a different seed draws differently


def test_relevant_min_grade_in_pairs_and_queries(beir_folder):
    """relevant_min_grade 2: grade-1 documents are neither relevant nor non-relevant pairs (judged, so no clean
    negatives); queries without a gain-2 document are dropped."""
    qrels = pd.DataFrame({"qid": ["1", "1", "1", "2", "2"], "doc_id": ["d1", "d2", "d3", "d4", "d5"],
                          "grade": [2, 1, 0, 2, 1]})
    qrels = data.apply_gain(qrels, {})
    cand = pd.DataFrame([(q, f"d{i}") for q in ("1", "2") for i in range(1, 9)], columns=["qid", "doc_id"])
    strict = data.sample_pairs(cand, qrels, ["1", "2"], n_per_class=100, seed=0, shard_size=4, relevant_min_grade=2)
    got = {(q, d): label for q, d, label in zip(strict.qid, strict.doc_id, strict.label)}
    assert {k for k, v in got.items() if v == 1} == {("1", "d1"), ("2", "d4")}
    assert ("1", "d2") not in got and ("2", "d5") not in got  # grade 1: in neither class
    assert ("1", "d3") not in got  # judged non-relevant: not a clean negative either
    assert {k for k, v in got.items() if v == 0} == {(q, f"d{i}") for q in ("1", "2") for i in range(1, 9)} - set(
        zip(qrels.qid, qrels.doc_id))
    loose = data.sample_pairs(cand, qrels, ["1", "2"], n_per_class=100, seed=0, shard_size=4)
    assert set(loose.loc[loose.label == 1, "pair_id"]) == {"1:d1", "1:d2", "2:d4", "2:d5"}  # default 1
    spec = DatasetSpec.from_config("tiny", {"source": f"local:{beir_folder}", "relevant_min_grade": 2})
    assert spec.relevant_min_grade == 2 and DatasetSpec.from_config("t", {"source": "x"}).relevant_min_grade == 1
    assert data.load_collection(spec).queries.qid.tolist() == ["1"]  # only query 1 has a grade-2 document
    with pytest.raises(DataError, match="relevant_min_grade must be ≥ 1"):
        DatasetSpec(name="x", source="x", relevant_min_grade=0)


def test_bm25_ranks_planted_exact_match_first():
    docs = pd.DataFrame(
        {"doc_id": [f"n{i}" for i in range(30)] + ["planted"],
         "text": [f"generic text about aircraft number {i} and wings" for i in range(30)]
         + ["magnetohydrodynamic stagnation point heat flux"]}
    )
    queries = pd.DataFrame({"qid": ["q"], "text": ["stagnation point heat flux magnetohydrodynamic"]})
    cand = firststage.bm25_candidates(docs, queries, k=10)
    assert cand.iloc[0].doc_id == "planted" and cand.iloc[0]["rank"] == 1
    assert cand["score"].is_monotonic_decreasing


def test_bad_dataset_references(tmp_path, beir_folder):
    with pytest.raises(DataError, match="unknown ir_datasets id 'no-such-dataset'"):
        data.check_source(DatasetSpec(name="x", source="no-such-dataset"))
    with pytest.raises(DataError, match="local folder .*missing.* does not exist"):
        data.check_source(DatasetSpec(name="x", source=f"local:{tmp_path / 'missing'}"))
    (beir_folder / "qrels" / "test.tsv").unlink()
    with pytest.raises(DataError, match="has no qrels/test.tsv"):
        data.check_source(DatasetSpec(name="x", source=f"local:{beir_folder}"))


def test_dataset_without_qrels_fails(beir_folder):
    (beir_folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n")
    with pytest.raises(DataError, match="dataset 'x': no qrels"):
        data.load_collection(DatasetSpec(name="x", source=f"local:{beir_folder}"))


def _append(path, text):
    with open(path, "a") as fh:
        fh.write(text)


def _load_error(beir_folder) -> str:
    with pytest.raises(DataError) as err:
        data.load_collection(DatasetSpec(name="x", source=f"local:{beir_folder}"))
    assert "\n" not in str(err.value)
    return str(err.value)


def test_malformed_corpus_line_names_file_and_line(beir_folder):
    _append(beir_folder / "corpus.jsonl", '{"_id": "d7", "text": "broken line"\n')  # line 7: no closing brace
    assert _load_error(beir_folder) == (f"dataset 'x': {beir_folder / 'corpus.jsonl'} line 7: not valid JSON "
                                        "(Expecting ',' delimiter at column 36)")


def test_corpus_and_queries_lines_without_required_fields_name_file_and_line(beir_folder):
    lines = (beir_folder / "queries.jsonl").read_text().splitlines()
    lines[1] = '{"_id": "2", "title": "no text here"}'
    (beir_folder / "queries.jsonl").write_text("\n".join(lines) + "\n")
    assert _load_error(beir_folder).endswith("queries.jsonl line 2: no 'text' field")
    lines[1] = '["2", "a list, not an object"]'
    (beir_folder / "queries.jsonl").write_text("\n".join(lines) + "\n")
    assert _load_error(beir_folder).endswith("queries.jsonl line 2: expected a JSON object, got list")
    _append(beir_folder / "corpus.jsonl", "\n" + '{"text": "no id"}\n')  # a blank line 7 is skipped: line 8
    assert "corpus.jsonl line 8: no '_id' field" in _load_error(beir_folder)


def test_qrels_row_with_wrong_number_of_fields_names_file_and_line(beir_folder):
    qrels = beir_folder / "qrels" / "test.tsv"
    rows = qrels.read_text().splitlines()
    rows[3] = "2\td4"  # line 4
    qrels.write_text("\n".join(rows) + "\n")
    assert _load_error(beir_folder) == (f"dataset 'x': {qrels} line 4: 2 fields, expected 3 tab-separated "
                                        "(query-id, corpus-id, score)")
    rows[3] = "2\td4\t1\textra"
    qrels.write_text("\n".join(rows) + "\n")
    assert _load_error(beir_folder).endswith("test.tsv line 4: 4 fields, expected 3 tab-separated (query-id, corpus-id, score)")
    rows[3] = "2\td4\thigh"
    qrels.write_text("\n".join(rows) + "\n")
    assert _load_error(beir_folder).endswith("test.tsv line 4: score 'high' is not an integer")
    qrels.write_text("1\td5\t2\n2\td4\t1\n")  # no header: the first row is data
    c = data.load_collection(DatasetSpec(name="x", source=f"local:{beir_folder}"))
    assert sorted(zip(c.qrels.qid, c.qrels.doc_id)) == [("1", "d5"), ("2", "d4")]


def test_dangling_qrels_are_dropped_with_a_warning_with_counts(beir_folder, caplog):
    _append(beir_folder / "qrels" / "test.tsv", "1\tgone1\t1\n2\tgone1\t1\n3\tgone2\t2\n")
    with caplog.at_level("WARNING", logger="irneurons.retrieval.datasets"):
        c = data.load_collection(DatasetSpec(name="x", source=f"local:{beir_folder}"))
    assert [r.getMessage() for r in caplog.records] == [
        "dataset 'x': 3 qrels rows name 2 documents not in the corpus; ignored ('gone1', 'gone2')"]
    assert not {"gone1", "gone2"} & set(c.qrels.doc_id) and len(c.qrels) == 6


def test_a_corrupt_doc_store_with_duplicated_documents_fails_with_one_line(monkeypatch):
    """Two jobs building one ir_datasets doc store at once left duplicated documents (seen in a ci run): the
    dataset must fail naming the fix instead of pairing one query with two copies of a passage downstream."""
    from types import SimpleNamespace

    import ir_datasets

    from irneurons.retrieval import datasets as data

    doc = SimpleNamespace(doc_id="d1", text="flutter of swept wings", title="")
    fake = SimpleNamespace(
        queries_iter=lambda: iter([SimpleNamespace(query_id="1", text="flutter")]),
        qrels_iter=lambda: iter([SimpleNamespace(query_id="1", doc_id="d1", relevance=1)]),
        docs_store=lambda: SimpleNamespace(get_many_iter=lambda ids: iter([doc, doc])),
    )
    monkeypatch.setattr(data, "check_source", lambda spec: None)
    monkeypatch.setattr(ir_datasets, "load", lambda source: fake)
    with pytest.raises(data.DataError, match=r"dataset 'toy': the doc store in .* has duplicated documents; delete"):
        data.load_ir_datasets(data.DatasetSpec(name="toy", source="toy"), {"d1"})
