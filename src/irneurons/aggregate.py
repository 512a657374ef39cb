"""Merge NIG shards into per-unit statistics, streaming (one shard in memory at a time), float64 throughout.

For every unit type (``ffn`` neuron, attention ``head``) × layer × unit × token part × class (``relevant``,
``non_relevant``, ``all``) we keep n, mean and M2 = Σ (x − mean)² and merge shards with Chan et al.'s
parallel update:

    n = n_a + n_b,  δ = mean_b − mean_a,  mean = mean_a + δ·n_b/n,  M2 = M2_a + M2_b + δ²·n_a·n_b/n,

so std = sqrt(M2 / (n − 1)) is exact up to float64 rounding, whatever the order and sizes of the shards.
Parts are the NIG token parts plus ``total`` (the sum over all parts: the unit's whole conductance).
The mean |activation| of each unit and part (for the magnitude baseline) is averaged the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .nig import PART_NAMES, load_shard

CLASSES = ("relevant", "non_relevant", "all")
PARTS = PART_NAMES + ("total",)
UNIT_KEYS = {"ffn": ("ffn", "ffn_absact"), "head": ("heads", "heads_absact")}


@dataclass
class RunningStats:
    """n, mean and M2 of a stream of arrays of one shape, merged batch by batch (Chan et al.)."""

    n: int = 0
    mean: np.ndarray | float = 0.0
    m2: np.ndarray | float = 0.0

    def add(self, batch: np.ndarray) -> None:
        """Add a batch [k, ...] of k observations."""
        batch = np.asarray(batch, dtype=np.float64)
        k = batch.shape[0]
        if k == 0:
            return
        b_mean = batch.mean(axis=0)
        b_m2 = ((batch - b_mean) ** 2).sum(axis=0)
        n = self.n + k
        delta = b_mean - self.mean
        self.mean = self.mean + delta * (k / n)
        self.m2 = self.m2 + b_m2 + delta**2 * (self.n * k / n)
        self.n = n

    @property
    def std(self) -> np.ndarray:
        if self.n < 2:
            return np.full_like(np.asarray(self.mean, dtype=np.float64), np.nan)
        return np.sqrt(self.m2 / (self.n - 1))


@dataclass
class UnitAggregate:
    """Statistics of one dataset's shards: conductance per (class, unit type) and mean |activation|."""

    nig: dict = field(default_factory=dict)
    absact: dict = field(default_factory=dict)
    completeness: list = field(default_factory=list)

    def add_shard(self, arrays: dict) -> None:
        if not arrays:  # an empty shard (fewer pairs than requested)
            return
        labels = arrays["label"]
        for unit, (key, act_key) in UNIT_KEYS.items():
            values = arrays[key]  # [N, P, L, U]
            with_total = np.concatenate([values, values.sum(axis=1, keepdims=True)], axis=1)
            acts = arrays[act_key]
            for cls, mask in (("relevant", labels == 1), ("non_relevant", labels == 0), ("all", np.ones_like(labels, bool))):
                self.nig.setdefault((cls, unit), RunningStats()).add(with_total[mask])
                self.absact.setdefault((cls, unit), RunningStats()).add(acts[mask])
        self.completeness.append(
            pd.DataFrame(
                {"ffn_cut_relerr_max": arrays["ffn_cut_relerr"].max(axis=1),
                 "heads_cut_relerr_max": arrays["heads_cut_relerr"].max(axis=1),
                 "f_x": arrays["f_x"], "f_baseline": arrays["f_baseline"], "label": labels}
            )
        )

    def table(self) -> pd.DataFrame:
        """Long table: unit_type, layer, unit, part, class, mean, std, n, absact_mean (absact NaN for ``total``)."""
        frames = []
        for (cls, unit), stats in sorted(self.nig.items()):
            mean, std = np.asarray(stats.mean), np.asarray(stats.std)
            n_parts, n_layers, n_units = mean.shape
            p, l, u = np.meshgrid(np.arange(n_parts), np.arange(n_layers), np.arange(n_units), indexing="ij")
            act = np.full(mean.shape, np.nan)
            act[: len(PART_NAMES)] = self.absact[(cls, unit)].mean
            frames.append(pd.DataFrame({
                "unit_type": unit, "layer": l.ravel().astype(np.int16), "unit": u.ravel().astype(np.int32),
                "part": np.asarray(PARTS)[p.ravel()], "class": cls, "mean": mean.ravel(), "std": std.ravel(),
                "n": stats.n, "absact_mean": act.ravel(),
            }))
        if not frames:
            raise ValueError("no pairs in any shard")
        return pd.concat(frames, ignore_index=True)


def aggregate_shards(paths) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(unit statistics long table, per-pair completeness table) from shard files, one shard in memory at a time."""
    agg = UnitAggregate()
    for path in paths:
        arrays, _ = load_shard(path)
        agg.add_shard(arrays)
    return agg.table(), pd.concat(agg.completeness, ignore_index=True)
