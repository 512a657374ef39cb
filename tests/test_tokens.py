import pandas as pd
import pytest

from irneurons.attribution import tokens

from .conftest import tiny_cross_encoder


def test_token_ig_is_complete_and_respects_the_baseline():
    net, tok = tiny_cross_encoder(layers=2, d_ff=32, seed=1)
    args = dict(pair_ids=["p"], labels=[1], steps=64, max_length=32)
    table = tokens.token_attributions(net, tok, ["heat transfer"], ["laminar boundary layer heat flux"], **args)
    assert table["token"].iloc[0] == "[CLS]" and list(table["position"]) == list(range(len(table)))
    # completeness: Σ_t IG_t = F(x) − F(x') for IG on the word embeddings
    total = table["attribution"].sum()
    assert total == pytest.approx(table["f_x"].iloc[0] - table["f_baseline"].iloc[0], rel=1e-3, abs=1e-5)
    # special tokens equal their baseline token, so they get exactly zero
    assert (table.loc[table["part"].isin(["cls", "sep1", "sep2"]), "attribution"] == 0).all()
    only_query = tokens.token_attributions(net, tok, ["heat transfer"], ["laminar boundary layer heat flux"],
                                           baseline="pad_query", **args)
    assert (only_query.loc[only_query["part"] == "passage", "attribution"] == 0).all()
    assert (only_query.loc[only_query["part"] == "query", "attribution"] != 0).all()


def test_example_pairs_are_deterministic():
    pairs = pd.DataFrame({"pair_id": ["c", "a", "b", "d"], "label": [1, 1, 0, 0]})
    got = tokens.example_pairs(pairs, 1)
    assert got["pair_id"].tolist() == ["a", "b"]
