"""The researcher's API: per-token conductance (captum oracle), NeuronConductance / Attribution, unit sets, pruned()."""

import json

import numpy as np
import pytest
from captum.attr import LayerConductance

import irneurons
from irneurons import testing
from irneurons.units import hooks as units
from irneurons.attribution.conductance import Labelled, NeuronConductance, NIGSettings, encoded_ids
from irneurons.errors import ConfigError, InputError
from irneurons.rankers.pairs import Encoded
from irneurons.rankers.relevance import relevance
from irneurons.rankers.scoring import score_pairs
from irneurons.study.pruning import pruned, pruned_scores
from irneurons.units.unitsets import UnitSet, parse_unit_id

from .conftest import tiny_cross_encoder
from .test_nig import CLS, PAD, SEP, _parts_and_embeddings, batch, tiny_bert

pytestmark = pytest.mark.usefixtures("one_thread")

KEPT = [("ffn", 0, 3), ("ffn", 1, 0), ("ffn", 1, 17), ("heads", 1, 2), ("heads", 0, 0)]


def captum_per_token(model, module, steps):
    """captum LayerConductance (riemann_right) of ``module``'s input per token: [B, T, D]. The modules are the
    projections (a Linear of the units alone), so captum's total derivative is the cut's partial one."""
    ids, am, tt, parts, e_x, e_b = _parts_and_embeddings(model)
    override = units.EmbeddingOverride(model)

    def forward(word_emb, ids_, tt_, am_):
        with override:
            override.value = word_emb
            return relevance(model(input_ids=ids_, token_type_ids=tt_, attention_mask=am_).logits, "logit")

    out = LayerConductance(forward, module).attribute(
        e_x, baselines=e_b, additional_forward_args=(ids, tt, am), n_steps=steps, method="riemann_right",
        attribute_to_layer_input=True)
    out = out[0] if isinstance(out, tuple) else out  # a Linear has one input
    return out.detach().double().numpy()


def test_per_token_conductance_equals_captum_per_token():
    model = tiny_bert()
    ids, am, tt = batch()
    nc = NeuronConductance(model, estimator="captum_riemann_right", steps=8)
    r = nc.attribute_encoded(encoded_ids(ids, am, tt, cls_id=CLS, sep_id=SEP), pad_id=PAD, units=KEPT).arrays
    assert r["ffn_tokens"].shape == (2, 1, ids.shape[1], 3) and r["heads_tokens"].shape == (2, 1, ids.shape[1], 2)
    assert r["ffn_token_units"].tolist() == [[0, 3], [1, 0], [1, 17]]
    assert r["heads_token_units"].tolist() == [[0, 0], [1, 2]]  # layer-sorted
    lay = units.layout(model)
    for j, (layer, unit) in enumerate(r["ffn_token_units"]):
        ref = captum_per_token(model, units.ffn_modules(model)[layer], 8)[..., unit]
        np.testing.assert_allclose(r["ffn_tokens"][:, 0, :, j], ref, rtol=1e-7, atol=1e-9 * np.abs(ref).max())
    for j, (layer, head) in enumerate(r["heads_token_units"]):
        ref = captum_per_token(model, units.head_modules(model)[layer], 8)
        ref = ref.reshape(*ref.shape[:2], lay.n_heads, lay.d_head).sum(-1)[..., head]
        np.testing.assert_allclose(r["heads_tokens"][:, 0, :, j], ref, rtol=1e-7, atol=1e-9 * np.abs(ref).max())


@pytest.mark.parametrize("estimator,budget",
                         [("chebyshev_lobatto", None), ("riemann_right", 35), ("gauss_legendre", 25)])
@pytest.mark.parametrize("model_type,kind", [("bert", "cross_encoder"), ("bert", "bi_encoder")])
def test_per_token_values_sum_to_the_part_sums(estimator, budget, model_type, kind):
    """Σ over a part's tokens (and streams) of the kept units = the part sums, also when a pair's points are
    split over chunks (small budget, difference rule) and for two streams (bi-encoder)."""
    t = testing.tiny(model_type, kind)
    enc = Encoded(t.input_ids, t.attention_mask, t.token_type_ids, t.parts)
    nc = NeuronConductance(t.model, estimator=estimator, steps=6, budget=budget)
    r = nc.attribute_encoded(enc, pad_id=t.pad_id, answers=t.answers, units=KEPT).arrays
    for block, key in (("ffn", "ffn_tokens"), ("heads", "heads_tokens")):
        for j, (layer, unit) in enumerate(r[f"{block}_token_units"]):
            for p in range(6):
                per_part = (r[key][..., j] * (t.parts.numpy() == p)).sum((1, 2))
                np.testing.assert_allclose(per_part, r[block][:, p, layer, unit], rtol=1e-9, atol=1e-12)


def test_neuron_conductance_attribution_object(tmp_path):
    model, tok = tiny_cross_encoder()
    model = model.double()
    nc = NeuronConductance(model, tok, estimator="chebyshev_lobatto", steps=16)
    qs, ps = ["wing flutter", "heat transfer"], ["flutter of swept wings in transonic flow", "heat flux of a plate"]
    attr = nc.attribute(qs, ps, pair_ids=["a", "b"])
    assert attr.ffn.dims == ("pair", "part", "layer", "unit") and attr.ffn.shape == (2, 6, 2, 64)
    assert attr.layers == ("encoder.0", "encoder.1") and attr.parts[1] == "query"
    q = attr.ffn.sel(pair="b", part="query", layer="encoder.1")
    np.testing.assert_array_equal(np.asarray(q), attr.arrays["ffn"][1, 1, 1])
    assert attr.completeness.ok.all() and attr.completeness.median.max() < 1e-3
    np.testing.assert_allclose(attr.completeness.delta_f, attr.f_x - attr.f_baseline)
    assert "2 of 2 pairs within nig.max_cut_relerr=0.25" in str(attr.completeness)
    # top: the largest |mean over pairs| of the query part, in order
    top = attr.top(5, unit_type="ffn", part="query")
    mean = attr.arrays["ffn"][:, 1].mean(0)
    order = np.argsort(-np.abs(mean).reshape(-1), kind="stable")[:5]
    assert top["unit_id"].tolist() == [f"ffn:{i // 64}:{i % 64}" for i in order]
    np.testing.assert_allclose(top["conductance"], mean.reshape(-1)[order])
    total = attr.top(3, unit_type="head", part="total", order="desc")
    np.testing.assert_allclose(total["conductance"], np.sort(attr.arrays["heads"].sum(1).mean(0).reshape(-1))[::-1][:3])
    frame = attr.to_frame("head")
    assert len(frame) == 2 * 7 * 2 * 4
    row = frame.query("pair_id == 'a' and part == 'passage' and layer == 1 and unit == 3")
    assert row["conductance"].item() == pytest.approx(attr.arrays["heads"][0, 3, 1, 3])
    # save / load round trip
    attr.save(tmp_path / "a.npz")
    back = irneurons.Attribution.load(tmp_path / "a.npz")
    assert back.pair_ids == ["a", "b"] and back.meta["queries"] == qs
    np.testing.assert_array_equal(back.arrays["ffn"], attr.arrays["ffn"])
    with pytest.raises(KeyError, match="per_token=True"):
        attr.tokens("ffn")


def test_per_token_api_and_errors(tmp_path):
    model, tok = tiny_cross_encoder()
    nc = NeuronConductance(model, tok, steps=8)
    set_path = tmp_path / "set.json"
    set_path.write_text(json.dumps({"unit_type": "ffn", "sets": [[[1, 5], [0, 2]]]}))
    attr = nc.attribute("wing flutter", ["flutter of swept wings", "heat flux"], per_token=True, units=set_path)
    tokens = attr.tokens("ffn")
    assert tokens.coords["unit"] == ("ffn:0:2", "ffn:1:5")
    frame = attr.token_frame("ffn:1:5")
    assert frame.iloc[0]["token"] == "[CLS]" and set(frame["part"]) == {"cls", "query", "sep1", "passage", "sep2"}
    by_part = frame.groupby(["pair_id", "part"])["conductance"].sum()
    assert by_part[("0", "query")] == pytest.approx(attr.arrays["ffn"][0, 1, 1, 5], rel=1e-4, abs=1e-6)
    with pytest.raises(ValueError, match="per_token=True needs units"):
        nc.attribute("q", "p", per_token=True)
    with pytest.raises(ValueError, match="pass per_token=True"):
        nc.attribute("q", "p", units=["ffn:0:1"])
    with pytest.raises(ValueError, match="2 queries but 3 passages"):
        nc.attribute(["a", "b"], ["x", "y", "z"])


def test_unit_sets_parse_every_form(tmp_path):
    assert parse_unit_id("ffn:3:117") == ("ffn", 3, 117) and parse_unit_id("heads:2:5") == ("head", 2, 5)
    for bad in ("ffn:3", "neuron:1:2", "ffn:a:1"):
        with pytest.raises(ValueError, match="is not ffn:<layer>:<unit>|unknown unit type"):
            parse_unit_id(bad)
    assert UnitSet.parse("ffn:1:2, head:0:3 ffn:0:9").ids() == ["ffn:0:9", "ffn:1:2", "head:0:3"]
    assert UnitSet.parse([("heads", 1, 1), ("ffn", 0, 0)]).as_dict() == {"ffn": [(0, 0)], "heads": [(1, 1)]}
    record = {"unit_type": "head", "sets": [[[1, 2]], [[0, 1], [1, 0]]]}
    assert UnitSet.parse(record, index=1).heads == [(0, 1), (1, 0)]
    with pytest.raises(ValueError, match="index 2 out of range[:,] the file holds 2 set"):
        UnitSet.parse(record, index=2)
    with pytest.raises(ValueError, match="no such file"):
        UnitSet.parse(str(tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not JSON"):
        UnitSet.parse(tmp_path / "bad.json")


def test_pruned_context_manager_takes_a_saved_set(tmp_path):
    model, tok = tiny_cross_encoder()
    qs, ps = ["wing flutter"] * 3, ["flutter of swept wings", "heat flux", "transonic flow"]
    before = score_pairs(model, tok, qs, ps, max_length=32)
    path = tmp_path / "nig_top.json"
    path.write_text(json.dumps({"unit_type": "ffn", "sets": [[[0, 1], [1, 7], [1, 8]]]}))
    with pruned(model, path) as pruning:
        inside = score_pairs(model, tok, qs, ps, max_length=32)
        assert pruning.ffn == {0: [1], 1: [7, 8]}
    ref = pruned_scores(model, tok, qs, ps, ffn=[(0, 1), (1, 7), (1, 8)], max_length=32)
    np.testing.assert_array_equal(inside, ref)
    assert not np.allclose(inside, before)
    np.testing.assert_array_equal(score_pairs(model, tok, qs, ps, max_length=32), before)  # hooks removed
    with pytest.raises(ValueError, match="ffn:5:1: layer 5 out of range, the model has layers 0-1"):
        with pruned(model, ["ffn:5:1"]):
            pass
    with pytest.raises(ValueError, match="part 'body' is not one of"):
        with pruned(model, ["ffn:0:1"], part="body"):
            pass


def test_labelled_sel_errors():
    a = Labelled(np.zeros((2, 3)), ("pair", "part"), {"part": ("cls", "query", "sep1")})
    assert a.sel(part="query").dims == ("pair",) and a.sel(pair=1).shape == (3,)
    with pytest.raises(KeyError, match="no dimension 'layer'"):
        a.sel(layer=0)


# --------------------------------------------------------------------------- settings and input checks


def test_settings_defaults_come_from_one_place_and_mirror_the_config():
    import os

    import yaml

    root = os.path.join(os.path.dirname(__file__), "..", "config")
    default_run = yaml.safe_load(open(os.path.join(root, "config.yaml")))["nig"]
    schema = yaml.safe_load(open(os.path.join(root, "schema.yaml")))["properties"]["nig"]["properties"]
    s = NIGSettings()
    assert (s.estimator, s.steps, s.baseline, s.bf16) == (default_run["estimator"], default_run["steps"],
                                                          default_run["baseline"], default_run["bf16"])
    for key in ("max_cut_relerr", "min_abs_delta_f", "max_bad_share"):
        assert getattr(s, key) == default_run[key] == schema[key]["default"], key
    assert set(schema) <= set(NIGSettings.names())  # every config key is a setting
    cfg = NIGSettings.from_config({**default_run, "steps": 8, "budget": 512}, target="logit")
    assert (cfg.steps, cfg.budget, cfg.target, cfg.estimator) == (8, 512, "logit", "chebyshev_lobatto")
    with pytest.raises(ConfigError, match="nig.step: not a NIG setting"):
        NIGSettings.from_config({"step": 8})
    with pytest.raises(InputError, match="estimator='simpson': must be one of"):
        NIGSettings(estimator="simpson")
    with pytest.raises(InputError, match="steps=0"):
        NIGSettings().replace(steps=0)
    with pytest.raises(InputError, match="bf16='maybe'"):
        NIGSettings(bf16="maybe")


def test_neuron_conductance_settings_overrides_and_encoded_path_agree():
    model, tok = tiny_cross_encoder()
    model = model.double()
    qs, ps = ["wing flutter", "heat transfer"], ["flutter of swept wings in transonic flow", "heat flux of a plate"]
    by_keywords = NeuronConductance(model, tok, baseline="pad_query_passage", estimator="gauss_legendre", steps=6)
    settings = NIGSettings.from_config({"estimator": "chebyshev_lobatto", "steps": 6, "baseline": "pad_query_passage"})
    by_settings = NeuronConductance(model, tok, settings, estimator="gauss_legendre")  # overrides win
    assert by_settings.settings == by_keywords.settings and by_settings.settings.steps == 6
    a = by_keywords.attribute(qs, ps, pair_ids=["a", "b"])
    b = by_settings.attribute_encoded(by_settings.encode(qs, ps), pair_ids=["a", "b"])
    assert a.arrays.keys() == b.arrays.keys()
    for key in a.arrays:
        np.testing.assert_array_equal(a.arrays[key], b.arrays[key], err_msg=key)
    assert a.meta["estimator"] == "gauss_legendre" and a.meta["queries"] == qs and "queries" not in b.meta
    assert a.completeness.median.max() < 1e-3  # 6 Gauss–Legendre nodes on a smooth path
    # the other estimator really is another computation
    other = NeuronConductance(model, tok, settings).attribute(qs, ps)
    assert not np.array_equal(other.arrays["ffn"], a.arrays["ffn"])
    with pytest.raises(InputError, match="'step' is not a NIG setting"):
        NeuronConductance(model, tok, step=8)
    with pytest.raises(InputError, match="settings: a NIGSettings or None, got str"):
        NeuronConductance(model, tok, "logit")


@pytest.mark.parametrize("query,passage,side", [("", "a passage", "query"), ("   ", "a passage", "query"),
                                                 ("a query", "", "passage"), ("a query", "\n\t", "passage")])
def test_empty_query_or_passage_is_refused_naming_the_pair(query, passage, side):
    model, tok = tiny_cross_encoder()
    nc = NeuronConductance(model, tok, steps=4)
    qs, ps = ["wing flutter", query], ["flutter of swept wings", passage]
    with pytest.raises(InputError, match=rf"pair 1 \(id 'q-2'\): the {side} is empty") as err:
        nc.attribute(qs, ps, pair_ids=["q-1", "q-2"])
    assert "\n" not in str(err.value) and "F(x) - F(x') = 0" in str(err.value)
    with pytest.raises(InputError, match=rf"pair 1: the {side} is empty"):
        nc.attribute(qs, ps)


def test_why_an_empty_query_is_refused():
    """With a pad_query baseline an empty query gives x' = x: ΔF = 0 and every conductance exactly 0 (Gauss–Legendre:
    the path's tangent e(x) − e(x') is exactly 0)."""
    model, tok = tiny_cross_encoder()
    nc = NeuronConductance(model.double(), tok, estimator="gauss_legendre", steps=4)
    attr = nc.attribute(["", "wing"], ["flutter of wings"] * 2, allow_empty=True)
    assert attr.arrays["n_tokens"][0, 1] == 0 and attr.arrays["n_tokens"][1, 1] > 0
    assert attr.completeness.delta_f[0] == 0.0 and attr.completeness.delta_f[1] != 0.0
    for key in ("ffn", "heads", "ffn_resid", "heads_resid"):
        assert not attr.arrays[key][0].any() and attr.arrays[key][1].any(), key


def test_input_checks():
    model, tok = tiny_cross_encoder()
    nc = NeuronConductance(model, tok, steps=4)
    with pytest.raises(InputError, match="pair_ids: 1 ids for 2 pairs"):
        nc.attribute(["a", "b"], "p", pair_ids=["x"])
    with pytest.raises(InputError, match=r"passages\[1\]: a string, got int"):
        nc.attribute("q", ["p", 3])
    with pytest.raises(InputError, match="no pairs"):
        nc.attribute([], [])
    with pytest.raises(ValueError, match="layer 9 out of range"):
        nc.attribute("q", "p", per_token=True, units=["ffn:9:0"])
    with pytest.raises(InputError, match="needs pad_id="):
        NeuronConductance(model).attribute_encoded(nc.encode(["q"], ["p"]))
    with pytest.raises(InputError, match="needs the tokenizer"):
        NeuronConductance(model).attribute("q", "p")
