"""Merge NIG shards into per-unit statistics, streaming (one shard in memory at a time), float64 throughout.

For every unit type (``ffn`` neuron, attention ``head``) × layer × unit × token part × class (``relevant``,
``non_relevant``, ``all``) we keep n, mean and M2 = Σ (x − mean)² and merge shards with Chan et al.'s
parallel update:

    n = n_a + n_b,  δ = mean_b − mean_a,  mean = mean_a + δ·n_b/n,  M2 = M2_a + M2_b + δ²·n_a·n_b/n,

so std = sqrt(M2 / (n − 1)) is exact up to float64 rounding, whatever the order and sizes of the shards.
Parts are the NIG token parts plus ``total`` (the sum over all parts: the unit's whole conductance).
The mean |activation| of each unit and part (for the magnitude baseline) is averaged the same way; for
``total`` it is the token-weighted mean over the real (non-pad) tokens, Σ_p n_p·|a|_p / Σ_p n_p.

Split-half stability is not computed here: it splits *queries* and needs per-pair values under permuted
labels, so :mod:`irneurons.study.stability` reads the shards itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from irneurons.attribution.completeness import MAX_CUT_RELERR, MIN_ABS_DELTA_F, floored_cut_relerr
from irneurons.rankers.parts import PART_NAMES
from irneurons.attribution.shards import load_shard

REAL_PARTS = [i for i, p in enumerate(PART_NAMES) if p != "pad"]

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


def completeness_thresholds(meta: dict | None) -> tuple[float, float]:
    """(max_cut_relerr, min_abs_delta_f) a shard was checked with: its metadata's ``completeness`` report, else
    its ``nig`` options, else the library defaults."""
    meta = meta or {}
    report = meta.get("completeness") or meta.get("nig") or {}
    return (float(report.get("max_cut_relerr", MAX_CUT_RELERR)), float(report.get("min_abs_delta_f", MIN_ABS_DELTA_F)))


@dataclass
class UnitAggregate:
    """Statistics of one dataset's shards: conductance per (class, unit type), mean |activation|, and the
    per-pair completeness."""

    nig: dict = field(default_factory=dict)
    absact: dict = field(default_factory=dict)
    completeness: list = field(default_factory=list)

    def add_shard(self, arrays: dict, pair_ids=None, meta: dict | None = None) -> None:
        """Add one shard; ``meta`` (its metadata) supplies the completeness thresholds the attribute job
        applied (``completeness`` record, else its ``nig`` options, else the defaults of :mod:`irneurons.attribution.completeness`)."""
        if not arrays:  # an empty shard (fewer pairs than requested)
            return
        labels = arrays["label"]
        n_tok = arrays["n_tokens"][:, REAL_PARTS].astype(np.float64)  # [N, P_real]
        for unit, (key, act_key) in UNIT_KEYS.items():
            values = arrays[key]  # [N, P, L, U]
            total = values.sum(axis=1, keepdims=True)
            with_total = np.concatenate([values, total], axis=1)
            acts = arrays[act_key]
            act_total = np.einsum("np,npld->nld", n_tok, acts[:, REAL_PARTS]) / n_tok.sum(1)[:, None, None]
            acts = np.concatenate([acts, act_total[:, None]], axis=1)
            for cls, mask in (("relevant", labels == 1), ("non_relevant", labels == 0), ("all", np.ones_like(labels, bool))):
                self.nig.setdefault((cls, unit), RunningStats()).add(with_total[mask])
                self.absact.setdefault((cls, unit), RunningStats()).add(acts[mask])
        worst = arrays["ffn_cut_relerr"].argmax(axis=1)
        max_relerr, floor = completeness_thresholds(meta)
        median = np.median(floored_cut_relerr(arrays, floor), axis=1)
        self.completeness.append(
            pd.DataFrame(
                {"pair_id": list(pair_ids) if pair_ids is not None else [None] * len(labels),
                 "ffn_cut_relerr_median": median, "over_threshold": ~(median <= max_relerr),
                 "ffn_cut_relerr_max": arrays["ffn_cut_relerr"].max(axis=1),
                 "ffn_cut_sum_worst": arrays["ffn_cut_sum"][np.arange(len(worst)), worst],
                 "heads_cut_relerr_max": arrays["heads_cut_relerr"].max(axis=1),
                 "f_x": arrays["f_x"], "f_baseline": arrays["f_baseline"], "label": labels}
            )
        )

    def table(self) -> pd.DataFrame:
        """Long table: unit_type, layer, unit, part, class, mean, std, n, absact_mean."""
        frames = []
        for (cls, unit), stats in sorted(self.nig.items()):
            mean, std = np.asarray(stats.mean), np.asarray(stats.std)
            n_parts, n_layers, n_units = mean.shape
            p, l, u = np.meshgrid(np.arange(n_parts), np.arange(n_layers), np.arange(n_units), indexing="ij")
            act = np.asarray(self.absact[(cls, unit)].mean)
            frames.append(pd.DataFrame({
                "unit_type": unit, "layer": l.ravel().astype(np.int16), "unit": u.ravel().astype(np.int32),
                "part": np.asarray(PARTS)[p.ravel()], "class": cls, "mean": mean.ravel(), "std": std.ravel(),
                "n": stats.n, "absact_mean": act.ravel(),
            }))
        if not frames:
            raise ValueError("no pairs in any shard")
        return pd.concat(frames, ignore_index=True)


def aggregate_shards(paths):
    """Aggregate shard files, one shard in memory at a time.

    Returns (unit statistics long table, per-pair completeness table). The completeness table
    has one row per pair: pair_id, ffn_cut_relerr_median (median over layers of the FFN relative cut error,
    |ΔF| floored at ``nig.min_abs_delta_f``), over_threshold (that median > ``nig.max_cut_relerr``, the
    thresholds the shard was checked with), ffn_cut_relerr_max, ffn_cut_sum_worst, heads_cut_relerr_max,
    f_x, f_baseline, label.
    """
    agg = UnitAggregate()
    for path in paths:
        arrays, meta = load_shard(path)
        agg.add_shard(arrays, meta.get("pair_ids"), meta)
    return agg.table(), pd.concat(agg.completeness, ignore_index=True)
