import numpy as np
import pytest

from irneurons import aggregate, nig


def fake_shard(rng, n, L=2, d_ff=5, H=3):
    P = len(nig.PART_NAMES)
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
        nig.save_shard(paths[-1], s if len(s["label"]) else {}, {"i": i, "pair_ids": [f"{i}-{j}" for j in range(len(s["label"]))]})
    table, comp = aggregate.aggregate_shards(paths)
    full = {k: np.concatenate([s[k] for s in shards]) for k in shards[0]}
    rel = full["label"] == 1
    ffn_total = full["ffn"].sum(axis=1)  # [N, L, d_ff]
    row = table.query("unit_type == 'ffn' and layer == 1 and unit == 3 and part == 'passage' and `class` == 'relevant'")
    x = full["ffn"][rel, nig.PART_NAMES.index("passage"), 1, 3]
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
    real = [i for i, p in enumerate(nig.PART_NAMES) if p != "pad"]
    w = full["n_tokens"][:, real]
    per_pair = (w * full["ffn_absact"][:, real, 1, 2]).sum(1) / w.sum(1)
    act = table.query("unit_type == 'ffn' and layer == 1 and unit == 2 and part == 'total' and `class` == 'all'")
    assert act["absact_mean"].item() == pytest.approx(per_pair.mean(), rel=1e-12)


def test_split_halves_balanced_disjoint_and_averaged(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(1)
    shards = [fake_shard(rng, n) for n in (6, 9)]
    ids = [[f"{i}-{j}" for j in range(len(s["label"]))] for i, s in enumerate(shards)]
    pairs = pd.DataFrame({"pair_id": sum(ids, []), "label": np.concatenate([s["label"] for s in shards])})
    halves = aggregate.assign_halves(pairs, seed=0)
    assert halves == aggregate.assign_halves(pairs, seed=0) and halves != aggregate.assign_halves(pairs, seed=1)
    for label, g in pairs.groupby("label"):  # each class split as evenly as possible
        assert abs(sum(halves[p] for p in g["pair_id"]) * 2 - len(g)) <= 1
    paths = []
    for i, s in enumerate(shards):
        paths.append(tmp_path / f"s{i}.npz")
        nig.save_shard(paths[-1], s, {"pair_ids": ids[i]})
    _, _, half_table = aggregate.aggregate_shards(paths, halves)
    full = {k: np.concatenate([s[k] for s in shards]) for k in shards[0]}
    h = np.array([halves[p] for p in sum(ids, [])])
    mask = (full["label"] == 1) & (h == 1)
    row = half_table.query("unit_type == 'ffn' and layer == 0 and unit == 1 and `class` == 'relevant' and half == 1")
    assert row["mean"].item() == pytest.approx(full["ffn"][mask, :, 0, 1].sum(1).mean(), rel=1e-12)
    assert row["n"].item() == mask.sum()
