r"""The researcher's API: :class:`NeuronConductance` (one class, one ``attribute`` call, like captum's
``attr._core``) and the :class:`Attribution` it returns.

Neuron conductance (NIG, Dhamdhere et al. 2018) of a unit activation a, on the straight path
γ(α) = e(x') + α (e(x) − e(x')) between the word embeddings of the baseline x' and of the input x:

    Cond(a) = ∫₀¹ ∂F/∂a(γ(α)) · ∂a(γ(α))/∂α dα,

summed over the tokens of each part (and, for a head, over its d_head context elements). F is the ranker's
relevance score (:mod:`irneurons.rankers.kinds`). Completeness per layer cut: Σ_units Cond + Cond(residual) =
F(x) − F(x'); :attr:`Attribution.completeness` reports how far each pair is from it.

Example::

    from irneurons import NeuronConductance, load_ranker
    model, tokenizer = load_ranker("results/default/model/hf")
    nc = NeuronConductance(model, tokenizer, estimator="chebyshev_lobatto", steps=16)
    attr = nc.attribute(["wing flutter"], ["flutter of swept wings in transonic flow"])
    attr.completeness.ok.all(), attr.top(5, unit_type="ffn", part="query")
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from irneurons.attribution.completeness import MAX_CUT_RELERR, MIN_ABS_DELTA_F, floored_cut_relerr
from irneurons.attribution.nig import attribute_ids
from irneurons.rankers.parts import PART_LABELS, PART_NAMES
from irneurons.rankers.pairs import answer_ids, encode_pairs, pad_id
from irneurons.rankers.kinds import spec_of
from irneurons.attribution.shards import load_shard, save_shard
from irneurons.units.unitsets import UNIT_TYPES, UnitSet, unit_id
from irneurons.units.hooks import layer_streams

BLOCK = {"ffn": "ffn", "head": "heads"}


@dataclass
class Labelled:
    """A numpy array with named dimensions and coordinate labels (``sel(part="query", layer=3)``)."""

    values: np.ndarray
    dims: tuple[str, ...]
    coords: dict[str, tuple] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape

    def __array__(self, dtype=None, copy=None):
        return self.values if dtype is None else self.values.astype(dtype)

    def sel(self, **which) -> "Labelled":
        """Pick one label (or index) per named dimension; the picked dimensions are dropped."""
        values, dims, coords = self.values, list(self.dims), dict(self.coords)
        for dim, label in which.items():
            if dim not in dims:
                raise KeyError(f"no dimension {dim!r}; dimensions are {tuple(dims)}")
            axis = dims.index(dim)
            labels = coords.pop(dim, ())
            index = labels.index(label) if label in labels else int(label)
            values = np.take(values, index, axis=axis)
            dims.pop(axis)
        return Labelled(values, tuple(dims), coords)


@dataclass
class Completeness:
    """Per pair: ΔF = F(x) − F(x'), the FFN cut's relative error per layer |Σ Cond − ΔF| / max(|ΔF|, floor),
    its median over layers and ``ok`` = median ≤ ``max_relerr`` (the workflow's ``nig.max_cut_relerr``)."""

    delta_f: np.ndarray
    relerr: np.ndarray  # [N, L]
    max_relerr: float
    floor: float

    @property
    def median(self) -> np.ndarray:
        return np.median(self.relerr, axis=1)

    @property
    def ok(self) -> np.ndarray:
        return self.median <= self.max_relerr

    def __str__(self) -> str:
        worst = float(self.median.max()) if len(self.median) else 0.0
        return (f"completeness: {int(self.ok.sum())} of {len(self.ok)} pairs within nig.max_cut_relerr="
                f"{self.max_relerr:g} (worst median-over-layers FFN relative cut error {worst:.2%})")


@dataclass
class Attribution:
    """NIG of every FFN neuron and head for N pairs (arrays of :data:`irneurons.attribution.nig.RESULT_DOC`), labelled.

    ``ffn`` / ``heads``: [pair, part, layer, unit] conductance; ``*_absact``: mean |activation| at x;
    with ``per_token``: ``ffn_tokens`` / ``heads_tokens`` [pair, stream, token, unit] for the chosen units.
    """

    arrays: dict[str, np.ndarray]
    meta: dict

    # ------------------------------------------------------------ labelled views

    @property
    def pair_ids(self) -> list[str]:
        return list(self.meta["pair_ids"])

    @property
    def parts(self) -> tuple[str, ...]:
        """Part names of this model kind (cross-encoders: cls, query, sep1, passage, sep2, pad)."""
        return tuple(self.meta["parts"])

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(self.meta["layers"])

    @property
    def f_x(self) -> np.ndarray:
        return self.arrays["f_x"]

    @property
    def f_baseline(self) -> np.ndarray:
        return self.arrays["f_baseline"]

    def _labelled(self, key: str, unit_name: str) -> Labelled:
        values = self.arrays[key]
        coords = {"pair": tuple(self.pair_ids), "part": self.parts, "layer": self.layers}
        return Labelled(values, ("pair", "part", "layer", unit_name), coords)

    @property
    def ffn(self) -> Labelled:
        return self._labelled("ffn", "unit")

    @property
    def heads(self) -> Labelled:
        return self._labelled("heads", "head")

    def tokens(self, unit_type: str = "ffn") -> Labelled:
        """Per-token conductance [pair, stream, token, unit] of the units chosen with ``per_token=True``."""
        key = f"{BLOCK[unit_type]}_tokens"
        if key not in self.arrays:
            raise KeyError("no per-token values: attribute(..., per_token=True, units=[...]) keeps them")
        units = tuple(unit_id(unit_type, int(l), int(u)) for l, u in self.arrays[f"{BLOCK[unit_type]}_token_units"])
        return Labelled(self.arrays[key], ("pair", "stream", "token", "unit"), {"pair": tuple(self.pair_ids), "unit": units})

    @property
    def completeness(self) -> Completeness:
        floor = float(self.meta.get("min_abs_delta_f", MIN_ABS_DELTA_F))
        return Completeness(self.f_x - self.f_baseline, floored_cut_relerr(self.arrays, floor),
                            float(self.meta.get("max_cut_relerr", MAX_CUT_RELERR)), floor)

    # ------------------------------------------------------------ tables

    def _unit_table(self, unit_type: str, part: str, pair=None) -> pd.DataFrame:
        block = BLOCK[unit_type]
        cond, act = self.arrays[block], self.arrays[f"{block}_absact"]
        if pair is not None:
            index = self.pair_ids.index(pair) if pair in self.pair_ids else int(pair)
            cond, act = cond[index : index + 1], act[index : index + 1]
        if part == "total":
            c = cond.sum(axis=1)  # [N, L, U]
            n_tok = self.arrays["n_tokens"].astype(np.float64)
            if pair is not None:
                n_tok = n_tok[index : index + 1]
            w = n_tok * (np.arange(n_tok.shape[1]) != PART_NAMES.index("pad"))  # pad tokens are not the pair's
            a = np.einsum("np,npl...->nl...", w, act) / np.maximum(w.sum(1), 1)[:, None, None]
        else:
            p = self.parts.index(part) if part in self.parts else PART_NAMES.index(part)
            c, a = cond[:, p], act[:, p]
        n_layers, n_units = c.shape[1:]
        layer, unit = np.divmod(np.arange(n_layers * n_units), n_units)
        return pd.DataFrame({
            "unit_id": [unit_id(unit_type, int(l), int(u)) for l, u in zip(layer, unit)],
            "unit_type": unit_type, "layer": layer, "unit": unit, "part": part,
            "conductance": c.mean(axis=0).reshape(-1), "std": c.std(axis=0).reshape(-1),
            "absact": a.mean(axis=0).reshape(-1),
        })

    def top(self, k: int = 10, unit_type: str = "ffn", part: str = "total", order: str = "abs", pair=None) -> pd.DataFrame:
        """The ``k`` units of ``unit_type`` (``ffn`` | ``head``) with the largest mean conductance over the pairs
        (or of one ``pair``) at ``part`` (a part name or ``total``); ``order``: ``abs`` (|mean|), ``desc``, ``asc``."""
        if unit_type not in UNIT_TYPES:
            raise ValueError(f"unit_type must be one of {UNIT_TYPES}, got {unit_type!r}")
        if order not in ("abs", "desc", "asc"):
            raise ValueError(f"order must be abs, desc or asc, got {order!r}")
        table = self._unit_table(unit_type, part, pair)
        key = table["conductance"].abs() if order == "abs" else table["conductance"] * (1 if order == "desc" else -1)
        return table.loc[key.sort_values(ascending=False, kind="stable").index[:k]].reset_index(drop=True)

    def to_frame(self, unit_type: str | None = None) -> pd.DataFrame:
        """Long table: one row per (pair, unit, part incl. ``total``) with conductance and mean |activation|."""
        frames = []
        for ut in (unit_type,) if unit_type else UNIT_TYPES:
            for part in (*self.parts, "total"):
                for i, pid in enumerate(self.pair_ids):
                    t = self._unit_table(ut, part, i)
                    frames.append(t.drop(columns="std").assign(pair_id=pid))
        return pd.concat(frames, ignore_index=True)

    def token_frame(self, unit: str) -> pd.DataFrame:
        """Per-token conductance of one kept unit (id ``ffn:L:U`` / ``head:L:H``) with its tokens and parts."""
        unit_type = unit.split(":")[0]
        tok = self.tokens(unit_type)
        j = tok.coords["unit"].index(unit)
        rows = []
        for i, pid in enumerate(self.pair_ids):
            for s, (toks, parts) in enumerate(zip(self.meta["tokens"][i], self.meta["token_parts"][i])):
                for t, (text, part) in enumerate(zip(toks, parts)):
                    rows.append({"pair_id": pid, "stream": s, "position": t, "token": text,
                                 "part": self.parts[part], "conductance": float(tok.values[i, s, t, j])})
        return pd.DataFrame(rows)

    # ------------------------------------------------------------ files

    def save(self, path: str | os.PathLike) -> None:
        """Write arrays and metadata to one ``.npz`` (atomically); :meth:`load` reads it back."""
        save_shard(path, self.arrays, self.meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Attribution":
        arrays, meta = load_shard(path)
        return cls(arrays, meta)


def layer_names(model) -> list[str]:
    """``encoder.0``, ``encoder.1`` ... (``decoder.i`` for a T5 decoder's blocks)."""
    streams, count, out = layer_streams(model), {}, []
    for s in streams:
        out.append(f"{s}.{count.get(s, 0)}")
        count[s] = count.get(s, 0) + 1
    return out


class NeuronConductance:
    """Neuron conductance of every FFN neuron and attention head of a ranker (math: module docstring).

    ``target``: cross-encoder relevance target (``auto`` | ``logit`` | ``logit_diff`` | ``prob``); the model's
    kind comes from :func:`irneurons.load_ranker` (a plain HF model counts as a cross-encoder).
    ``baseline``: ``pad_query`` | ``pad_query_passage`` | ``pad_all`` (:mod:`irneurons.rankers.parts`).
    ``estimator`` / ``steps``: the quadrature (:mod:`irneurons.attribution.quadrature`); ``chebyshev_lobatto`` × 16 is the
    workflow's default (17 nodes, spectral ȧ, no forward-mode pass).
    """

    def __init__(self, model, tokenizer, target: str = "auto", baseline: str = "pad_query",
                 estimator: str = "chebyshev_lobatto", steps: int = 16, *, max_length: int = 128, device=None,
                 bf16: bool | str = False, budget: int | None = None, max_cut_relerr: float = MAX_CUT_RELERR,
                 min_abs_delta_f: float = MIN_ABS_DELTA_F):
        self.model, self.tokenizer = model, tokenizer
        self.spec = spec_of(model, target)
        self.target, self.baseline, self.estimator, self.steps = target, baseline, estimator, int(steps)
        self.max_length, self.device, self.bf16, self.budget = int(max_length), device, bf16, budget
        self.max_cut_relerr, self.min_abs_delta_f = float(max_cut_relerr), float(min_abs_delta_f)

    def attribute(self, queries: str | Sequence[str], passages: str | Sequence[str], per_token: bool = False,
                  units=None, *, pair_ids: Sequence | None = None, progress: bool = False) -> Attribution:
        """Attribute pairs (a single query or passage string is paired with every passage / query).

        ``per_token=True`` also keeps the per-token conductance of ``units`` — unit ids (``ffn:3:117``,
        ``head:2:5``), (unit_type, layer, unit) triples, a saved set (JSON path or dict) or a :class:`UnitSet`.
        Never for all units at once: that would hold pairs × tokens × 9,216 values for MiniLM.
        """
        queries = [queries] if isinstance(queries, str) else list(queries)
        passages = [passages] if isinstance(passages, str) else list(passages)
        if len(queries) == 1 and len(passages) > 1:
            queries = queries * len(passages)
        if len(passages) == 1 and len(queries) > 1:
            passages = passages * len(queries)
        if len(queries) != len(passages):
            raise ValueError(f"{len(queries)} queries but {len(passages)} passages")
        token_units = None
        if per_token:
            if units is None:
                raise ValueError("per_token=True needs units=[...] (a few selected units, not all of them)")
            chosen = UnitSet.parse(units)
            token_units = [("ffn", l, u) for l, u in chosen.ffn] + [("heads", l, h) for l, h in chosen.heads]
        elif units is not None:
            raise ValueError("units= chooses the units kept per token; pass per_token=True with it")
        enc = encode_pairs(self.spec, self.tokenizer, queries, passages, self.max_length)
        result = attribute_ids(
            self.model, enc.input_ids, enc.attention_mask, enc.token_type_ids, parts=enc.parts, spec=self.spec,
            answers=answer_ids(self.spec, self.tokenizer) if self.spec.answers else None,
            pad_id=pad_id(self.tokenizer), pair_ids=pair_ids, baseline=self.baseline, target=self.target,
            estimator=self.estimator, steps=self.steps, budget=self.budget, device=self.device, bf16=self.bf16,
            progress=progress, token_units=token_units,
        )
        ids = [str(p) for p in (pair_ids if pair_ids is not None else range(len(queries)))]
        meta = {
            "pair_ids": ids, "queries": queries, "passages": passages, "kind": self.spec.kind,
            "parts": list(PART_LABELS[self.spec.kind]), "layers": layer_names(self.model),
            "estimator": self.estimator, "steps": self.steps, "baseline": self.baseline, "target": self.target,
            "max_cut_relerr": self.max_cut_relerr, "min_abs_delta_f": self.min_abs_delta_f,
        }
        if per_token:
            mask = enc.attention_mask.bool()
            meta["tokens"] = [[self.tokenizer.convert_ids_to_tokens(row[m].tolist()) for row, m in zip(pair, pm)]
                              for pair, pm in zip(enc.input_ids, mask)]
            meta["token_parts"] = [[row[m].tolist() for row, m in zip(pair, pm)] for pair, pm in zip(enc.parts, mask)]
        return Attribution(result, meta)
