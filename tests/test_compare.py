"""Two models side by side: overlap of their top sets against uniform and layer-matched nulls."""

import numpy as np
import pandas as pd
import pytest

from irneurons.study import comparison as compare
from irneurons.study import selection as select


def table(scores: np.ndarray) -> pd.DataFrame:
    """A long neuron table with one class/part: mean = the given per-unit scores [layers, units]."""
    rows = [{"unit_type": "ffn", "layer": l, "unit": u, "part": "total", "class": "relevant", "mean": float(v),
             "std": 1.0, "n": 10, "absact_mean": 1.0} for (l, u), v in np.ndenumerate(scores)]
    return pd.DataFrame(rows)


SCORE = {"class": "relevant", "part": "total", "signed": True, "normalise": "zscore"}


def test_identical_models_overlap_fully_and_beat_both_nulls():
    s = np.random.default_rng(0).normal(size=(4, 50))
    row = compare.overlap(table(s), table(s), "ffn", 0.1, SCORE, n_random=99)
    assert row["k"] == 20 and row["jaccard"] == 1.0 and row["spearman"] == pytest.approx(1.0)
    assert row["chance_jaccard"] == pytest.approx(select.chance_jaccard(200, 20))
    assert row["layer_matched_p"] == pytest.approx(1 / 100)
    assert row["layers_a"] == row["layers_b"]


def test_independent_models_overlap_at_chance_and_layer_profile_is_the_null():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 250)), rng.normal(size=(4, 250))
    a[0] += 3  # both models concentrate on layer 0, units unrelated: only the layer profile is shared
    b[0] += 3
    row = compare.overlap(table(a), table(b), "ffn", 0.05, SCORE, n_random=99)
    assert row["jaccard"] > 3 * row["chance_jaccard"]  # above uniform chance (the layer profile)...
    assert row["layer_matched_p"] > 0.05  # ...but not above layer-matched random sets
    assert 0.3 < row["spearman"] < 0.8  # the shared layer shift alone correlates the scores


def test_different_layouts_are_refused_and_the_table_has_one_row_per_dataset():
    s = np.random.default_rng(2).normal(size=(2, 30))
    with pytest.raises(ValueError, match="differ"):
        compare.overlap(table(s), table(s[:, :20]), "ffn", 0.1, SCORE)
    out = compare.overlap_table({"x": table(s), "y": table(s)}, {"x": table(s), "y": table(-s)}, {"ffn": [0.1]}, SCORE,
                                n_random=19)
    assert out["dataset"].tolist() == ["x", "y"] and out["jaccard"].tolist()[0] == 1.0
    assert out["jaccard"].tolist()[1] == 0.0
