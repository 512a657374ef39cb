"""Reduction of per-token integrand pieces to token parts on the device, and the host-side result arrays."""

from __future__ import annotations

from irneurons.errors import NonFiniteAttributionError
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as Fn

from irneurons.attribution.completeness import COMPLETENESS_EPS
from irneurons.rankers.parts import N_PARTS


def raise_nonfinite(pair: int, key: str, pair_ids: Sequence | None):
    """Raise :class:`NonFiniteAttributionError` naming the pair (and its id) and the result key."""
    name = f"pair index {pair}" + (f" (id {pair_ids[pair]!r})" if pair_ids is not None else "")
    raise NonFiniteAttributionError(f"NaN/inf in the '{key}' attribution of {name}")


@dataclass
class PartReducer:
    """Sums [R, T, D] per-token values to [pairs, P, D] on the device.

    Row r belongs to pair slot ``slots[r]`` and is weighted by ``weights[r]``; rows with ``keep``
    False are dropped (not multiplied by 0, so a NaN there cannot leak). Per row a [P, T] × [T, D]
    batched matmul with the weighted one-hot part matrix, then an ``index_add`` over rows: a NaN
    stays in its own pair.
    """

    onehot: torch.Tensor  # [R, P, T], weight w_r on (part(r, t), t)
    slots: torch.Tensor  # [R_kept]
    keep: torch.Tensor | None  # [R] bool, None = all
    n_slots: int

    @classmethod
    def build(cls, parts_rows, slots, weights, n_slots, keep=None) -> "PartReducer":
        onehot = Fn.one_hot(parts_rows, N_PARTS).transpose(1, 2).to(weights.dtype) * weights[:, None, None]
        return cls(onehot, slots if keep is None else slots[keep], keep, n_slots)

    def __call__(self, values: torch.Tensor) -> torch.Tensor:
        per_row = torch.bmm(self.onehot, values.to(self.onehot.dtype))  # [R, P, D]
        if self.keep is not None:
            per_row = per_row[self.keep]
        out = torch.zeros(self.n_slots, *per_row.shape[1:], dtype=per_row.dtype, device=per_row.device)
        return out.index_add_(0, self.slots, per_row)


@dataclass
class TokenUnits:
    """Units whose per-token conductance is kept: per block (``ffn`` | ``heads``) and layer, the unit columns.

    ``columns[block][layer]`` is a LongTensor of unit indices; the result holds them in the order of
    ``order[block]`` ([k, 2] array of (layer, unit)), i.e. layer by layer in the order given.
    """

    columns: dict[str, dict[int, list[int]]]

    @classmethod
    def from_units(cls, units: Sequence[tuple[str, int, int]]) -> "TokenUnits":
        """``units``: (block, layer, unit) triples, block ``ffn`` or ``heads``."""
        columns: dict[str, dict[int, list[int]]] = {"ffn": {}, "heads": {}}
        for block, layer, unit in units:
            if block not in columns:
                raise ValueError(f"unit block {block!r} is not 'ffn' or 'heads'")
            columns[block].setdefault(int(layer), []).append(int(unit))
        return cls(columns)

    def order(self, block: str) -> np.ndarray:
        pairs = [(layer, u) for layer in sorted(self.columns[block]) for u in self.columns[block][layer]]
        return np.array(pairs, dtype=np.int64).reshape(-1, 2)

    def offset(self, block: str, layer: int) -> int:
        """Index of the layer's first unit in the result's unit axis."""
        return sum(len(v) for k, v in self.columns[block].items() if k < layer)


class Accumulator:
    """Host-side float64 results, filled from small per-chunk device reductions ([pairs, P, ...])."""

    def __init__(self, n_pairs: int, lay, n_tokens: np.ndarray, token_shape: tuple[int, int] | None = None,
                 token_units: TokenUnits | None = None):
        L, d_ff, H = lay.n_layers, lay.d_ff, lay.n_heads
        self.arr = {
            "ffn": np.zeros((n_pairs, N_PARTS, L, d_ff)),
            "heads": np.zeros((n_pairs, N_PARTS, L, H)),
            "ffn_resid": np.zeros((n_pairs, N_PARTS, L)),
            "heads_resid": np.zeros((n_pairs, N_PARTS, L)),
            "ffn_absact": np.zeros((n_pairs, N_PARTS, L, d_ff)),
            "heads_absact": np.zeros((n_pairs, N_PARTS, L, H)),
            "f_x": np.full(n_pairs, np.nan),
            "f_baseline": np.full(n_pairs, np.nan),
        }
        self.token_units = token_units
        if token_units is not None:
            for block in ("ffn", "heads"):
                k = len(token_units.order(block))
                self.arr[f"{block}_tokens"] = np.zeros((n_pairs, *token_shape, k))  # [N, S, T, k]
        self.absact_count = np.zeros((n_pairs, N_PARTS, L))
        self.n_tokens = n_tokens

    def add(self, key: str, pairs: np.ndarray, values: torch.Tensor) -> None:
        # ``pairs`` are unique within a chunk, so fancy-index += is exact.
        self.arr[key][pairs] += values.detach().to("cpu", torch.float64).numpy()

    def add_tokens(self, block: str, pairs: np.ndarray, start: int, values: torch.Tensor) -> None:
        """Per-token conductance [pairs, S, T_chunk, k_layer] of one layer's kept units, from unit ``start``."""
        v = values.detach().to("cpu", torch.float64).numpy()
        self.arr[f"{block}_tokens"][pairs, :, : v.shape[2], start : start + v.shape[3]] += v

    def nonfinite(self, pairs: Sequence[int]) -> list[tuple[int, str]]:
        """(pair, key) for every listed pair holding a NaN/inf."""
        return [
            (int(p), key)
            for p in pairs
            for key, arr in self.arr.items()
            if not key.startswith("f_") and not np.isfinite(arr[p]).all()
        ]

    def finish(self, param_dtype, pair_ids: Sequence | None) -> dict[str, np.ndarray]:
        """Means of |activation|, completeness sums Σ units + residual and their relative errors
        |Σ − ΔF| / max(|ΔF|, eps), ΔF = F(x) − F(x'); cast to the output dtype (fp64 for fp64 models)."""
        arr = self.arr
        for key in ("f_x", "f_baseline"):
            bad = np.flatnonzero(~np.isfinite(arr[key]))
            if bad.size:
                raise_nonfinite(int(bad[0]), key, pair_ids)
        counts = self.absact_count[:, :, :, None]
        for key in ("ffn_absact", "heads_absact"):
            arr[key] = arr[key] / np.maximum(counts, 1.0)  # sums are 0 where a part is empty
        delta_f = arr["f_x"] - arr["f_baseline"]
        denom = np.maximum(np.abs(delta_f), COMPLETENESS_EPS)[:, None]
        arr["ffn_cut_sum"] = arr["ffn"].sum(axis=(1, 3)) + arr["ffn_resid"].sum(axis=1)
        arr["heads_cut_sum"] = arr["heads"].sum(axis=(1, 3)) + arr["heads_resid"].sum(axis=1)
        arr["ffn_cut_relerr"] = np.abs(arr["ffn_cut_sum"] - delta_f[:, None]) / denom
        arr["heads_cut_relerr"] = np.abs(arr["heads_cut_sum"] - delta_f[:, None]) / denom
        out_dtype = np.float64 if param_dtype == torch.float64 else np.float32
        result = {k: v.astype(out_dtype) for k, v in arr.items()}
        result["n_tokens"] = self.n_tokens.astype(np.int32)
        if self.token_units is not None:
            for block in ("ffn", "heads"):
                result[f"{block}_token_units"] = self.token_units.order(block)
        return result
