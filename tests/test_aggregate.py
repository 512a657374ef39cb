import numpy as np
import pytest

from irneurons.study import aggregate
from irneurons.attribution import completeness
from irneurons.rankers import parts
from irneurons.attribution.shards import save_shard


def fake_shard(rng, n, L=2, d_ff=5, H=3):
    P = len(parts.PART_NAMES)
    return {
        "ffn": rng.normal(size=(n, P, L, d_ff)), "heads": rng.normal(size=(n, P, L, H)),
        "ffn_absact": rng.random((n, P, L, d_ff)), "heads_absact": rng.random((n, P, L, H)),
        "ffn_cut_relerr": rng.random((n, L)), "heads_cut_relerr": rng.random((n, L)), "ffn_cut_sum": rng.normal(size=(n, L)),
        "f_x": rng.normal(size=n), "f_baseline": rng.normal(size=n), "label": rng.integers(0, 2, n),
        "n_tokens": rng.integers(1, 9, (n, P)),
    }


def test_streaming_merge_equals_direct_statistics(tmp_path):
    rng = np.random.default_rng(0)
    shards = [fake_shard(rng, n) for n in (7, 1, 12, 0, 5)]
    paths = []
    for i, s in enumerate(shards):
        paths.append(tmp_path / f"shard-{i}.npz")
        save_shard(paths[-1], s if len(s["label"]) else {}, {"i": i, "pair_ids": [f"{i}-{j}" for j in range(len(s["label"]))]})
    table, comp = aggregate.aggregate_shards(paths)
    full = {k: np.concatenate([s[k] for s in shards]) for k in shards[0]}
    rel = full["label"] == 1
    ffn_total = full["ffn"].sum(axis=1)  # [N, L, d_ff]
    row = table.query("unit_type == 'ffn' and layer == 1 and unit == 3 and part == 'passage' and `class` == 'relevant'")
    x = full["ffn"][rel, parts.PART_NAMES.index("passage"), 1, 3]
    assert row["mean"].item() == pytest.approx(x.mean(), rel=1e-12)
    assert row["std"].item() == pytest.approx(x.std(ddof=1), rel=1e-12)
    assert row["n"].item() == rel.sum()
    row = table.query("unit_type == 'head' and layer == 0 and unit == 2 and part == 'total' and `class` == 'all'")
    assert row["mean"].item() == pytest.approx(full["heads"][:, :, 0, 2].sum(axis=1).mean(), rel=1e-12)
    row = table.query("unit_type == 'ffn' and layer == 0 and unit == 0 and part == 'total' and `class` == 'non_relevant'")
    assert row["mean"].item() == pytest.approx(ffn_total[~rel, 0, 0].mean(), rel=1e-12)
    act = table.query("unit_type == 'ffn' and layer == 0 and unit == 4 and part == 'cls' and `class` == 'all'")
    assert act["absact_mean"].item() == pytest.approx(full["ffn_absact"][:, 0, 0, 4].mean(), rel=1e-12)
    assert len(comp) == len(full["label"]) == 25
    worst = full["ffn_cut_relerr"].argmax(axis=1)
    np.testing.assert_array_equal(comp["ffn_cut_sum_worst"], full["ffn_cut_sum"][np.arange(25), worst])
    # one row per unit type × layer × unit × part × class
    assert len(table) == 3 * len(aggregate.PARTS) * 2 * (5 + 3)

    # total |activation|: token-weighted mean over the real parts (pad excluded)
    real = [i for i, p in enumerate(parts.PART_NAMES) if p != "pad"]
    w = full["n_tokens"][:, real]
    per_pair = (w * full["ffn_absact"][:, real, 1, 2]).sum(1) / w.sum(1)
    act = table.query("unit_type == 'ffn' and layer == 1 and unit == 2 and part == 'total' and `class` == 'all'")
    assert act["absact_mean"].item() == pytest.approx(per_pair.mean(), rel=1e-12)


def test_completeness_table_flags_pairs_with_the_shards_thresholds(tmp_path):
    rng = np.random.default_rng(2)
    a, b = fake_shard(rng, 3, L=3), fake_shard(rng, 2, L=3)
    a["f_x"], a["f_baseline"] = np.array([1.0, 1.0, 0.52]), np.array([0.0, 0.0, 0.5])  # ΔF 1, 1, 0.02
    a["ffn_cut_sum"] = np.array([[1.1, 1.2, 3.0], [1.3, 1.4, 1.0], [0.02, 0.02, 0.04]])  # medians 0.2, 0.3, 0 / 0.4
    b["f_x"], b["f_baseline"] = np.array([2.0, 0.0]), np.array([0.0, 0.01])  # ΔF 2, −0.01
    b["ffn_cut_sum"] = np.array([[2.2, 2.2, 2.2], [0.0, 0.0, 0.0]])  # medians 0.1; 0.01 / floor
    a["label"], b["label"] = np.array([1, 0, 1]), np.array([0, 1])
    paths = [tmp_path / "a.npz", tmp_path / "b.npz"]
    save_shard(paths[0], a, {"pair_ids": ["1:x", "1:y", "2:z"],
                                 "completeness": {"max_cut_relerr": 0.25, "min_abs_delta_f": 0.05}})
    save_shard(paths[1], b, {"pair_ids": ["3:u", "3:v"], "nig": {"max_cut_relerr": 0.05, "min_abs_delta_f": 0.02}})
    _, comp = aggregate.aggregate_shards(paths)
    assert comp["pair_id"].tolist() == ["1:x", "1:y", "2:z", "3:u", "3:v"]
    np.testing.assert_allclose(comp["ffn_cut_relerr_median"], [0.2, 0.3, 0.0, 0.1, 0.5], atol=1e-12)
    assert comp["over_threshold"].tolist() == [False, True, False, True, True]
    # a shard without recorded thresholds falls back to the defaults of irneurons.attribution.nig
    assert aggregate.completeness_thresholds({}) == (completeness.MAX_CUT_RELERR, completeness.MIN_ABS_DELTA_F)
