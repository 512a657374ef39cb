r"""The one front door of attribution: :class:`NeuronConductance` (settings :class:`NIGSettings`) and the
:class:`Attribution` it returns. Neuron Integrated Gradients (neuron conductance, Dhamdhere et al. 2018).

Math
----
Input x = word embeddings e(x) of the encoded pair (cross-encoders ``[CLS] query [SEP] passage [SEP] [PAD]...``;
other kinds: :mod:`irneurons.rankers.pairs`); baseline x' = word embeddings of the same ids with some tokens
replaced by [PAD] (:data:`irneurons.rankers.parts.BASELINES`). Only word embeddings move along the straight path

    γ(α) = e(x') + α (e(x) − e(x')),   α ∈ [0, 1];

position / segment embeddings, token types and attention mask stay those of the real input. F is the ranker's
relevance score (:mod:`irneurons.rankers.relevance`). For a unit activation a (one FFN neuron, or one element of a
head's context vector, at one token) the conductance is

    Cond(a) = ∫₀¹ ∂F/∂a(γ(α)) · ∂a(γ(α))/∂α dα,

a head's conductance is the sum over its d_head context elements, and per-part values sum over the part's tokens.
Units are the inputs of each block's output sub-module (:mod:`irneurons.units.hooks`), so per block (layer cut)

    Σ Cond(units) + Cond(residual) = F(x) − F(x')   (completeness),

reported per pair (:attr:`Attribution.completeness`). An empty query (or passage) breaks the method, not just the
numbers: with a ``pad_query`` baseline it makes x' = x, so ΔF = 0 and every conductance is identically 0; such
pairs are refused.

Estimators (S = ``steps``; a_k = a(γ(α_k)), g_k = ∂F/∂a at γ(α_k)):

- ``riemann_right``:  α_k = k/S, Cond ≈ Σ_{k=1..S} g_k (a_k − a_{k−1}).
- ``riemann_left``:   same grid, Σ g_{k−1} (a_k − a_{k−1}).
- ``trapezoid``:      same grid, Σ ½ (g_{k−1} + g_k)(a_k − a_{k−1}).
- ``gauss_legendre``: S Gauss–Legendre nodes α_i, weights w_i on [0, 1];
  Cond ≈ Σ_i w_i g_i · ȧ_i with the exact ȧ_i = ∂a/∂α from forward-mode AD (tangent e(x) − e(x')).
  Error falls exponentially in S for a smooth path.
- ``chebyshev_lobatto``: S + 1 Chebyshev–Gauss–Lobatto nodes (α = 0 and 1 included), Clenshaw–Curtis weights
  w_i; Cond ≈ Σ_i w_i g_i · (D a)_i with D the spectral differentiation matrix over the pair's own nodes
  (:func:`irneurons.attribution.quadrature.chebyshev_lobatto`): high-order ȧ from the activations already
  computed, so no forward-mode pass (one forward + backward per node). Error falls exponentially in S.
- ``captum_riemann_right``: exactly what ``captum.attr.LayerConductance(method="riemann_right",
  n_steps=S)`` computes: α_j = j/(S+1), j = 1..S+1, Σ_{j=1..S} g_j (a_{j+1} − a_j). It never visits
  α < 1/(S+1), so it is not complete; kept as a bit-for-bit reference for the oracle tests.

Every row (one pair at one α) of a chunk goes through ONE batched forward and ONE ``torch.autograd.grad`` of
Σ F over the rows, w.r.t. the units of every layer at once (rows are independent, so ∂ΣF/∂a_row =
∂F_row/∂a_row). Per-token values are reduced to parts on the device.

Modules: token parts and baselines :mod:`irneurons.rankers.parts`; rules and chunk planning
:mod:`irneurons.attribution.quadrature`; the forward-mode linear trick :mod:`irneurons.attribution.linear_jvp`;
the passes :mod:`irneurons.attribution.engine`; reductions :mod:`irneurons.attribution.accumulate`; completeness
:mod:`irneurons.attribution.completeness`; shard I/O :mod:`irneurons.attribution.shards`.

Example::

    from irneurons import NeuronConductance, load_ranker
    model, tokenizer = load_ranker("results/default/model/hf")
    nc = NeuronConductance(model, tokenizer, estimator="chebyshev_lobatto", steps=16)
    attr = nc.attribute(["wing flutter"], ["flutter of swept wings in transonic flow"])
    attr.completeness.ok.all(), attr.top(5, unit_type="ffn", part="query")
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from irneurons.attribution.accumulate import Accumulator, TokenUnits, raise_nonfinite
from irneurons.attribution.completeness import MAX_BAD_SHARE, MAX_CUT_RELERR, MIN_ABS_DELTA_F, floored_cut_relerr
from irneurons.attribution.engine import Engine, attribution_mode
from irneurons.attribution.quadrature import ESTIMATORS, default_budget, plan_chunks, quadrature
from irneurons.attribution.shards import load_shard, save_shard
from irneurons.errors import ConfigError, InputError
from irneurons.numerics import resolve_bf16
from irneurons.rankers.kinds import spec_of
from irneurons.rankers.loading import resolve_device
from irneurons.rankers.pairs import Encoded, answer_ids, encode_pairs
from irneurons.rankers.pairs import pad_id as tokenizer_pad_id
from irneurons.rankers.parts import BASELINES, N_PARTS, PART_LABELS, PART_NAMES, baseline_ids, token_parts
from irneurons.rankers.relevance import TARGETS
from irneurons.units.hooks import layer_streams
from irneurons.units.unitsets import UNIT_TYPES, UnitSet, unit_id

BLOCK = {"ffn": "ffn", "head": "heads"}

#: Result keys (N pairs, P = 6 parts, L layers, d_ff FFN neurons, H heads; S streams, T tokens, k kept units).
RESULT_DOC = {
    "ffn": "[N,P,L,d_ff] conductance of each FFN neuron, summed over the part's tokens",
    "heads": "[N,P,L,H] conductance of each head (sum over its d_head context elements and the part's tokens)",
    "ffn_resid": "[N,P,L] conductance of the residual input of the FFN output module",
    "heads_resid": "[N,P,L] conductance of the residual input of the attention output module",
    "ffn_absact": "[N,P,L,d_ff] mean over the part's tokens of |a| at the real input (0 if the part is empty)",
    "heads_absact": "[N,P,L,H] mean over the part's tokens of the L2 norm of the head's d_head context "
    "vector at the real input (0 if the part is empty)",
    "n_tokens": "[N,P] tokens per part",
    "f_x": "[N] F at the real input",
    "f_baseline": "[N] F at the baseline",
    "ffn_cut_sum": "[N,L] Σ FFN units + residual conductance (≈ F(x) − F(x'))",
    "heads_cut_sum": "[N,L] Σ head units + residual conductance (≈ F(x) − F(x'))",
    "ffn_cut_relerr": "[N,L] |ffn_cut_sum − ΔF| / max(|ΔF|, eps)",
    "heads_cut_relerr": "[N,L] |heads_cut_sum − ΔF| / max(|ΔF|, eps)",
    "ffn_tokens": "[N,S,T,k] per-token conductance of the kept FFN units (only when asked)",
    "heads_tokens": "[N,S,T,k] per-token conductance of the kept heads (only when asked)",
    "ffn_token_units": "[k,2] (layer, unit) of the ffn_tokens columns",
    "heads_token_units": "[k,2] (layer, head) of the heads_tokens columns",
}

BF16_SETTINGS = (True, False, "auto", "true", "false")


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class NIGSettings:
    """How NIG is computed: the config's ``nig:`` section (config/schema.yaml) plus the relevance target.

    The defaults are the workflow's default run (config/config.yaml): Chebyshev–Lobatto with 16 intervals
    (17 nodes, spectral ȧ, no forward-mode pass), ``pad_query`` baseline, fp32.

    Args:
        estimator: the quadrature (:data:`irneurons.attribution.quadrature.ESTIMATORS`; maths in
            :mod:`irneurons.attribution.conductance`).
        steps: nodes (``gauss_legendre``) or intervals (the others), ≥ 1.
        baseline: which tokens become [PAD] in x': ``pad_query`` | ``pad_query_passage`` | ``pad_all``.
        target: relevance target F of a model with a classification head: ``auto`` | ``logit`` | ``logit_diff``
            | ``prob`` (other kinds ignore it).
        budget: max rows × tokens per forward (memory bound); None = per device
            (:func:`irneurons.attribution.quadrature.default_budget`). A pair's points may be split over forwards.
        bf16: bfloat16 autocast for the forward (fp32 accumulation): True, False or ``"auto"`` (native only).
        max_cut_relerr: completeness threshold per pair (median over layers of the FFN relative cut error).
        min_abs_delta_f: floor on |F(x) − F(x')| in that error's denominator.
        max_bad_share: the workflow's attribute job fails when more than this share of its pairs is over
            ``max_cut_relerr``.
        fast_jvp: the forward-mode trick for linear layers (:mod:`irneurons.attribution.linear_jvp`); only
            ``gauss_legendre`` runs a forward-mode pass. Same numbers either way (to rounding).

    Raises:
        InputError: a value out of range (one line naming the field and what is valid).

    Examples:
        >>> NIGSettings().estimator, NIGSettings().steps
        ('chebyshev_lobatto', 16)
        >>> NIGSettings.from_config({"estimator": "gauss_legendre", "steps": 8}).replace(baseline="pad_all").baseline
        'pad_all'
    """

    estimator: str = "chebyshev_lobatto"
    steps: int = 16
    baseline: str = "pad_query"
    target: str = "auto"
    budget: int | None = None
    bf16: bool | str = False
    max_cut_relerr: float = MAX_CUT_RELERR
    min_abs_delta_f: float = MIN_ABS_DELTA_F
    max_bad_share: float = MAX_BAD_SHARE
    fast_jvp: bool = True

    def __post_init__(self):
        def bad(name, valid):
            return InputError(f"NIG setting {name}={getattr(self, name)!r}: must be {valid}")

        if self.estimator not in ESTIMATORS:
            raise bad("estimator", f"one of {', '.join(ESTIMATORS)}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, (int, np.integer)) or self.steps < 1:
            raise bad("steps", "an integer ≥ 1")
        if self.baseline not in BASELINES:
            raise bad("baseline", f"one of {', '.join(BASELINES)}")
        if self.target not in TARGETS:
            raise bad("target", f"one of {', '.join(TARGETS)}")
        if self.budget is not None and (isinstance(self.budget, bool) or not isinstance(self.budget, (int, np.integer))
                                        or self.budget < 1):
            raise bad("budget", "None or an integer ≥ 1 (rows × tokens per forward)")
        if not any(self.bf16 is v or (isinstance(v, str) and self.bf16 == v) for v in BF16_SETTINGS):
            raise bad("bf16", "True, False or 'auto'")
        for name in ("max_cut_relerr", "min_abs_delta_f"):
            if not isinstance(getattr(self, name), (int, float)) or not getattr(self, name) > 0:
                raise bad(name, "a number > 0")
        if not isinstance(self.max_bad_share, (int, float)) or not 0 <= self.max_bad_share <= 1:
            raise bad("max_bad_share", "a number in [0, 1]")
        object.__setattr__(self, "steps", int(self.steps))
        if self.budget is not None:
            object.__setattr__(self, "budget", int(self.budget))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The field names (what :meth:`replace` and ``NeuronConductance(**overrides)`` take)."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_config(cls, section: dict | None, **overrides) -> NIGSettings:
        """Settings from the config's ``nig:`` section (missing keys take the defaults here), then ``overrides``.

        Args:
            section: ``config["nig"]`` (a dict; None = empty).
            **overrides: field values that win over the section (e.g. ``target`` from the model record, or a
                ``bf16`` already resolved for the device).

        Returns:
            :class:`NIGSettings`.

        Raises:
            ConfigError: a key of ``section`` that is no setting (naming it and the valid keys).

        Examples:
            >>> NIGSettings.from_config({"estimator": "gauss_legendre", "steps": 8, "bf16": "auto"}, bf16=False).bf16
            False
        """
        section = dict(section or {})
        unknown = sorted(set(section) - set(cls.names()))
        if unknown:
            raise ConfigError(f"nig.{unknown[0]}: not a NIG setting; valid keys: {', '.join(cls.names())}")
        return cls(**section).replace(**overrides)

    def replace(self, **overrides) -> NIGSettings:
        """A copy with ``overrides`` applied (an unknown name is an :class:`InputError` naming the valid ones).

        Examples:
            >>> NIGSettings().replace(steps=8).steps
            8
        """
        unknown = sorted(set(overrides) - set(self.names()))
        if unknown:
            raise InputError(f"{unknown[0]!r} is not a NIG setting; valid: {', '.join(self.names())}")
        return dataclasses.replace(self, **overrides) if overrides else self

    def record(self) -> dict:
        """The settings as a JSON-ready dict."""
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- labelled results


@dataclass
class Labelled:
    """A numpy array with named dimensions and coordinate labels (``sel(part="query", layer=3)``).

    Examples:
        >>> x = Labelled(np.arange(6).reshape(2, 3), ("pair", "layer"), {"pair": ("a", "b")})
        >>> x.sel(pair="b").values.tolist()
        [3, 4, 5]
    """

    values: np.ndarray
    dims: tuple[str, ...]
    coords: dict[str, tuple] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape

    def __array__(self, dtype=None, copy=None):
        return self.values if dtype is None else self.values.astype(dtype)

    def sel(self, **which) -> Labelled:
        """Pick one label (or index) per named dimension; the picked dimensions are dropped.

        Args:
            **which: dimension name → a coordinate label or an integer index.

        Returns:
            :class:`Labelled` without the picked dimensions.
        """
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
    """Per pair: ΔF = F(x) − F(x') ([N]), the FFN cut's relative error per layer |Σ Cond − ΔF| / max(|ΔF|, floor)
    ([N, L]), its median over layers ([N]) and ``ok`` = median ≤ ``max_relerr`` ([N] bool; the workflow's
    ``nig.max_cut_relerr``)."""

    delta_f: np.ndarray
    relerr: np.ndarray  # [N, L]
    max_relerr: float
    floor: float

    @property
    def median(self) -> np.ndarray:
        """[N] median over layers of the relative cut error."""
        return np.median(self.relerr, axis=1)

    @property
    def ok(self) -> np.ndarray:
        """[N] bool: the pair is within ``max_relerr``."""
        return self.median <= self.max_relerr

    def __str__(self) -> str:
        worst = float(self.median.max()) if len(self.median) else 0.0
        return (f"completeness: {int(self.ok.sum())} of {len(self.ok)} pairs within nig.max_cut_relerr="
                f"{self.max_relerr:g} (worst median-over-layers FFN relative cut error {worst:.2%})")


@dataclass
class Attribution:
    """NIG of every FFN neuron and head for N pairs, labelled: what :meth:`NeuronConductance.attribute` returns.

    Args:
        arrays: the result arrays (:data:`RESULT_DOC`): ``ffn`` [N, P, L, d_ff], ``heads`` [N, P, L, H],
            ``*_absact`` (mean |activation| at x, same shapes), ``f_x`` / ``f_baseline`` [N], cut sums and errors
            [N, L]; with per-token units ``ffn_tokens`` / ``heads_tokens`` [N, S, T, k].
        meta: ``pair_ids``, ``parts`` (the kind's part names), ``layers``, the settings; from text also
            ``queries``, ``passages`` and, with per-token units, ``tokens`` / ``token_parts``.

    Examples:
        >>> attr = NeuronConductance(model, tokenizer).attribute("wing flutter", "flutter of wings")  # doctest: +SKIP
        >>> attr.ffn.sel(pair=0, part="query").shape  # doctest: +SKIP
        (6, 1536)
    """

    arrays: dict[str, np.ndarray]
    meta: dict

    # ------------------------------------------------------------ labelled views

    @property
    def pair_ids(self) -> list[str]:
        """[N] pair ids (``"0"``, ``"1"``, ... unless given)."""
        return list(self.meta["pair_ids"])

    @property
    def parts(self) -> tuple[str, ...]:
        """[P] part names of this model kind (cross-encoders: cls, query, sep1, passage, sep2, pad)."""
        return tuple(self.meta["parts"])

    @property
    def layers(self) -> tuple[str, ...]:
        """[L] layer names (``encoder.0``, ...; ``decoder.i`` for a T5 decoder's blocks)."""
        return tuple(self.meta["layers"])

    @property
    def f_x(self) -> np.ndarray:
        """[N] F at the real input."""
        return self.arrays["f_x"]

    @property
    def f_baseline(self) -> np.ndarray:
        """[N] F at the baseline x'."""
        return self.arrays["f_baseline"]

    def _labelled(self, key: str, unit_name: str) -> Labelled:
        values = self.arrays[key]
        coords = {"pair": tuple(self.pair_ids), "part": self.parts, "layer": self.layers}
        return Labelled(values, ("pair", "part", "layer", unit_name), coords)

    @property
    def ffn(self) -> Labelled:
        """[pair, part, layer, unit] conductance of every FFN neuron (summed over the part's tokens)."""
        return self._labelled("ffn", "unit")

    @property
    def heads(self) -> Labelled:
        """[pair, part, layer, head] conductance of every attention head."""
        return self._labelled("heads", "head")

    def tokens(self, unit_type: str = "ffn") -> Labelled:
        """Per-token conductance of the units kept with ``per_token=True``.

        Args:
            unit_type: ``ffn`` or ``head``.

        Returns:
            :class:`Labelled` [pair, stream, token, unit] (unit labels are unit ids ``ffn:L:U`` / ``head:L:H``);
            Σ over tokens and streams = the part sums.

        Raises:
            KeyError: nothing was kept per token.

        Examples:
            >>> attr.tokens("ffn").sel(pair=0, stream=0, unit="ffn:3:117").shape  # doctest: +SKIP
            (24,)
        """
        key = f"{BLOCK[unit_type]}_tokens"
        if key not in self.arrays:
            raise KeyError("no per-token values: attribute(..., per_token=True, units=[...]) keeps them")
        units = tuple(unit_id(unit_type, int(l), int(u)) for l, u in self.arrays[f"{BLOCK[unit_type]}_token_units"])
        return Labelled(self.arrays[key], ("pair", "stream", "token", "unit"),
                        {"pair": tuple(self.pair_ids), "unit": units})

    @property
    def completeness(self) -> Completeness:
        """How far each pair is from completeness (:class:`Completeness`: ``delta_f`` [N], ``relerr`` [N, L],
        ``median`` [N], ``ok`` [N])."""
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

    def top(self, k: int = 10, unit_type: str = "ffn", part: str = "total", order: str = "abs",
            pair=None) -> pd.DataFrame:
        """The units with the largest mean conductance over the pairs (or of one pair).

        Args:
            k: how many units.
            unit_type: ``ffn`` | ``head``.
            part: a part name of this kind (:attr:`parts`) or ``total`` (sum over parts).
            order: ``abs`` (largest |mean|), ``desc`` (most positive) or ``asc`` (most negative).
            pair: a pair id or index; None = the mean over all pairs.

        Returns:
            DataFrame of k rows: unit_id, unit_type, layer, unit, part, conductance (mean over pairs), std,
            absact (mean |activation| at x).

        Examples:
            >>> attr.top(5, unit_type="head", part="query")["unit_id"].tolist()  # doctest: +SKIP
            ['head:2:5', ...]
        """
        if unit_type not in UNIT_TYPES:
            raise InputError(f"unit_type must be one of {UNIT_TYPES}, got {unit_type!r}")
        if order not in ("abs", "desc", "asc"):
            raise InputError(f"order must be abs, desc or asc, got {order!r}")
        table = self._unit_table(unit_type, part, pair)
        key = table["conductance"].abs() if order == "abs" else table["conductance"] * (1 if order == "desc" else -1)
        return table.loc[key.sort_values(ascending=False, kind="stable").index[:k]].reset_index(drop=True)

    def to_frame(self, unit_type: str | None = None) -> pd.DataFrame:
        """Long table of every pair, unit and part.

        Args:
            unit_type: ``ffn`` | ``head``; None = both.

        Returns:
            DataFrame with one row per (pair, unit, part incl. ``total``): unit_id, unit_type, layer, unit, part,
            conductance, absact, pair_id.

        Examples:
            >>> attr.to_frame("head").query("part == 'total'").shape[0] == len(attr.pair_ids) * 36  # doctest: +SKIP
            True
        """
        frames = []
        for ut in (unit_type,) if unit_type else UNIT_TYPES:
            for part in (*self.parts, "total"):
                for i, pid in enumerate(self.pair_ids):
                    t = self._unit_table(ut, part, i)
                    frames.append(t.drop(columns="std").assign(pair_id=pid))
        return pd.concat(frames, ignore_index=True)

    def token_frame(self, unit: str) -> pd.DataFrame:
        """Per-token conductance of one unit kept with ``per_token=True``, with its tokens and parts.

        Args:
            unit: a unit id ``ffn:L:U`` / ``head:L:H``.

        Returns:
            DataFrame with one row per real token of every pair and stream: pair_id, stream, position, token,
            part, conductance.

        Examples:
            >>> attr.token_frame("ffn:3:117").groupby("part")["conductance"].sum()  # doctest: +SKIP
        """
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
        """Write arrays and metadata to one ``.npz`` (atomically); :meth:`load` reads it back.

        Args:
            path: the ``.npz`` file.

        Examples:
            >>> attr.save("attr.npz"); Attribution.load("attr.npz").pair_ids  # doctest: +SKIP
            ['0']
        """
        save_shard(path, self.arrays, self.meta)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Attribution:
        """Read an :class:`Attribution` written by :meth:`save`.

        Args:
            path: the ``.npz`` file.

        Returns:
            :class:`Attribution`.
        """
        arrays, meta = load_shard(path)
        return cls(arrays, meta)


def layer_names(model) -> list[str]:
    """``encoder.0``, ``encoder.1`` ... (``decoder.i`` for a T5 decoder's blocks)."""
    streams, count, out = layer_streams(model), {}, []
    for s in streams:
        out.append(f"{s}.{count.get(s, 0)}")
        count[s] = count.get(s, 0) + 1
    return out


# --------------------------------------------------------------------------- inputs


def encoded_ids(input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None,
                *, cls_id: int, sep_id: int) -> Encoded:
    """Hand-built cross-encoder ids ``[CLS] q [SEP] p [SEP]`` as an :class:`irneurons.rankers.pairs.Encoded`.

    Args:
        input_ids: [N, T] token ids.
        attention_mask: [N, T].
        token_type_ids: [N, T] or None.
        cls_id: the [CLS] id; sep_id: the [SEP] id (parts are read from them,
            :func:`irneurons.rankers.parts.token_parts`).

    Returns:
        :class:`Encoded` with [N, 1, T] ids, mask, token types and parts
        (for :meth:`NeuronConductance.attribute_encoded`).

    Examples:
        >>> enc = encoded_ids(torch.tensor([[2, 10, 3, 20, 3]]), torch.ones(1, 5, dtype=torch.long), cls_id=2, sep_id=3)
        >>> enc.parts[0, 0].tolist()
        [0, 1, 2, 3, 4]
    """
    ids, am = input_ids.cpu(), attention_mask.cpu()
    if ids.dim() != 2 or am.shape != ids.shape:
        raise InputError(f"input_ids {tuple(ids.shape)} and attention_mask {tuple(am.shape)} must both be [N, T]")
    parts = token_parts(ids, None, am, cls_id, sep_id)
    tt = None if token_type_ids is None else token_type_ids.cpu()[:, None]
    return Encoded(ids[:, None], am[:, None], tt, parts[:, None])


def _texts(texts, what: str) -> list[str]:
    """``texts`` (one string or a sequence of strings) as a list; anything else is an :class:`InputError`."""
    if isinstance(texts, str):
        return [texts]
    try:
        out = list(texts)
    except TypeError:
        raise InputError(f"{what}: a string or a list of strings, got {type(texts).__name__}") from None
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise InputError(f"{what}[{i}]: a string, got {type(t).__name__}")
    return out


def _pairs(queries, passages, pair_ids, allow_empty: bool = False) -> tuple[list[str], list[str]]:
    """Normalised (queries, passages): one text is paired with every text of the other side; lengths, pair ids and
    empty texts checked."""
    queries, passages = _texts(queries, "queries"), _texts(passages, "passages")
    if len(queries) == 1 and len(passages) > 1:
        queries = queries * len(passages)
    if len(passages) == 1 and len(queries) > 1:
        passages = passages * len(queries)
    if len(queries) != len(passages):
        raise InputError(f"{len(queries)} queries but {len(passages)} passages: give as many of each, or one of either")
    if not queries:
        raise InputError("no pairs: give at least one query and one passage")
    if pair_ids is not None and len(pair_ids) != len(queries):
        raise InputError(f"pair_ids: {len(pair_ids)} ids for {len(queries)} pairs")
    for i, (q, p) in enumerate(zip(queries, passages) if not allow_empty else ()):
        name = f"pair {i}" + (f" (id {pair_ids[i]!r})" if pair_ids is not None else "")
        for side, text in (("query", q), ("passage", p)):
            if not text.strip():
                raise InputError(
                    f"{name}: the {side} is empty ({text!r}); attribution needs text on both sides (with a pad_query "
                    f"baseline an empty query makes x' = x, so F(x) - F(x') = 0 and every conductance is 0)")
    return queries, passages


def _streams(x: torch.Tensor | None) -> torch.Tensor | None:
    """[N, T] → [N, 1, T]; [N, S, T] unchanged."""
    return None if x is None else (x[:, None] if x.dim() == 2 else x)


# --------------------------------------------------------------------------- the front door


class NeuronConductance:
    """Neuron conductance of every FFN neuron and attention head of a ranker (maths: module docstring).

    Args:
        model: a ranker from :func:`irneurons.load_ranker` (its kind comes with it; a plain HF sequence classifier
            counts as a cross-encoder). Moved to ``device`` when attributing.
        tokenizer: its tokenizer (needed for text input; optional for :meth:`attribute_encoded` with ``pad_id``).
        settings: :class:`NIGSettings` (None = its defaults: ``chebyshev_lobatto`` × 16, ``pad_query``, fp32).
        max_length: tokens per pair (per stream for bi-encoders); longer queries are cut first
            (the tokenizer's query-truncation policy), then passages.
        device: where to run (None = cuda when available, else cpu).
        **overrides: :class:`NIGSettings` fields that win over ``settings`` (``estimator=``, ``steps=``, ...).

    Raises:
        InputError: an unknown override, or settings out of range.

    Examples:
        >>> nc = NeuronConductance(model, tokenizer, baseline="pad_query_passage", estimator="chebyshev_lobatto",
        ...                        steps=16)  # doctest: +SKIP
        >>> nc = NeuronConductance(model, tokenizer, NIGSettings.from_config(config["nig"]))  # doctest: +SKIP
    """

    def __init__(self, model, tokenizer=None, settings: NIGSettings | None = None, *, max_length: int = 128,
                 device=None, **overrides):
        if settings is not None and not isinstance(settings, NIGSettings):
            raise InputError(f"settings: a NIGSettings or None, got {type(settings).__name__} "
                             f"(pass target=, estimator=, ... as keywords)")
        self.settings = (settings or NIGSettings()).replace(**overrides)
        self.model, self.tokenizer = model, tokenizer
        self.spec = spec_of(model, self.settings.target)
        self.max_length, self.device = int(max_length), device

    # ------------------------------------------------------------ public

    def encode(self, queries: Sequence[str], passages: Sequence[str]) -> Encoded:
        """Token ids and parts of pairs as the ranker encodes them (:func:`irneurons.rankers.pairs.encode_pairs`).

        Args:
            queries, passages: N texts each (not checked: :meth:`attribute` checks).

        Returns:
            :class:`irneurons.rankers.pairs.Encoded` [N, S, T], padded to the longest pair (≤ ``max_length``).
        """
        return encode_pairs(self.spec, self.tokenizer, list(queries), list(passages), self.max_length)

    def attribute(self, queries: str | Sequence[str], passages: str | Sequence[str], per_token: bool = False,
                  units=None, *, pair_ids: Sequence | None = None, progress: bool = False,
                  allow_empty: bool = False) -> Attribution:
        """Attribute (query, passage) pairs.

        Args:
            queries: one query or N queries (a single query is paired with every passage).
            passages: one passage or N passages (a single passage is paired with every query).
            per_token: also keep the per-token conductance of ``units``.
            units: with ``per_token``: unit ids (``ffn:3:117``, ``head:2:5``), (unit_type, layer, unit) triples, a
                saved set (JSON path or dict) or a :class:`irneurons.UnitSet`. Never all units at once: that would
                hold pairs × tokens × 9,216 values for MiniLM.
            pair_ids: N ids (default ``"0"``, ``"1"``, ...).
            progress: a tqdm bar over pairs.
            allow_empty: attribute pairs with an empty query or passage anyway (the workflow's displays do, so
                that one empty document does not stop them); their conductances may be identically 0.

        Returns:
            :class:`Attribution` of the N pairs (``ffn`` [N, P, L, d_ff], ``heads`` [N, P, L, H], ...;
            with ``per_token`` also ``ffn_tokens`` / ``heads_tokens`` [N, S, T, k]).

        Raises:
            InputError: counts that do not match, an empty (or whitespace-only) query or passage (naming the pair),
                ``units`` without ``per_token`` or the reverse. UnitError: a unit the model does not have.
            NonFiniteAttributionError: a NaN / inf attribution (naming the pair).

        Examples:
            >>> attr = nc.attribute("wing flutter", ["flutter of swept wings", "boundary layers"])  # doctest: +SKIP
            >>> attr.completeness.ok.all(), attr.top(5, unit_type="ffn", part="query")  # doctest: +SKIP
        """
        queries, passages = _pairs(queries, passages, pair_ids, allow_empty)
        if per_token and units is None:
            raise InputError("per_token=True needs units=[...] (a few selected units, not all of them)")
        if units is not None and not per_token:
            raise InputError("units= chooses the units kept per token; pass per_token=True with it")
        if self.tokenizer is None:
            raise InputError("attribute() encodes text and needs the tokenizer: NeuronConductance(model, tokenizer)")
        enc = self.encode(queries, passages)
        attr = self.attribute_encoded(enc, pair_ids=pair_ids, units=units, progress=progress)
        meta = dict(attr.meta)
        attr.meta = {"pair_ids": meta.pop("pair_ids"), "queries": queries, "passages": passages, **meta}
        if per_token:
            mask = enc.attention_mask.bool()
            attr.meta["tokens"] = [[self.tokenizer.convert_ids_to_tokens(row[m].tolist()) for row, m in zip(pair, pm)]
                                   for pair, pm in zip(enc.input_ids, mask)]
            attr.meta["token_parts"] = [[row[m].tolist() for row, m in zip(pair, pm)]
                                        for pair, pm in zip(enc.parts, mask)]
        return attr

    def attribute_encoded(self, encoded: Encoded, pair_ids: Sequence | None = None, *, units=None,
                          pad_id: int | None = None, answers: tuple[int, int] | None = None,
                          progress: bool = False) -> Attribution:
        """Attribute pairs that are already token ids (the workflow's shards; hand-built ids in tests).

        Args:
            encoded: :class:`irneurons.rankers.pairs.Encoded` ([N, S, T] ids, mask, token types, parts), e.g. from
                :meth:`encode` or :func:`encoded_ids`.
            pair_ids: N ids (default ``"0"``, ``"1"``, ...); they name a pair in errors.
            units: units whose per-token conductance is also kept (as in :meth:`attribute`); None = none.
            pad_id: the [PAD] id of the baseline (None = the tokenizer's).
            answers: the answer token ids of a prompted kind (None = the tokenizer's ids of the spec's answers).
            progress: a tqdm bar over pairs.

        Returns:
            :class:`Attribution` (arrays of :data:`RESULT_DOC`; meta without texts or tokens).

        Raises:
            InputError: shapes that do not match, or neither ``pad_id`` nor a tokenizer.

        Examples:
            >>> enc = encoded_ids(ids, mask, cls_id=2, sep_id=3)  # doctest: +SKIP
            >>> NeuronConductance(model, estimator="gauss_legendre").attribute_encoded(enc, pad_id=0)  # doctest: +SKIP
        """
        n_pairs = encoded.input_ids.shape[0]
        if encoded.attention_mask.shape != encoded.input_ids.shape or encoded.parts.shape != encoded.input_ids.shape:
            raise InputError(f"encoded: input_ids {tuple(encoded.input_ids.shape)}, attention_mask "
                             f"{tuple(encoded.attention_mask.shape)} and parts {tuple(encoded.parts.shape)} must agree")
        if pair_ids is not None and len(pair_ids) != n_pairs:
            raise InputError(f"pair_ids: {len(pair_ids)} ids for {n_pairs} pairs")
        if pad_id is None or (answers is None and self.spec.answers):
            if self.tokenizer is None:
                raise InputError("attribute_encoded() without a tokenizer needs pad_id= (and answers= for a prompted "
                                 "kind)")
        pad = tokenizer_pad_id(self.tokenizer) if pad_id is None else int(pad_id)
        if answers is None and self.spec.answers:
            answers = answer_ids(self.spec, self.tokenizer)
        token_units = None
        if units is not None:
            chosen = UnitSet.parse(units).check(self.model)
            token_units = [("ffn", l, u) for l, u in chosen.ffn] + [("heads", l, h) for l, h in chosen.heads]
        arrays = self._attribute(encoded, pair_ids, token_units, pad, answers, progress)
        s = self.settings
        meta = {
            "pair_ids": [str(p) for p in (pair_ids if pair_ids is not None else range(n_pairs))],
            "kind": self.spec.kind, "parts": list(PART_LABELS[self.spec.kind]), "layers": layer_names(self.model),
            "estimator": s.estimator, "steps": s.steps, "baseline": s.baseline, "target": s.target,
            "max_cut_relerr": float(s.max_cut_relerr), "min_abs_delta_f": float(s.min_abs_delta_f),
        }
        return Attribution(arrays, meta)

    # ------------------------------------------------------------ computation

    def _attribute(self, encoded: Encoded, pair_ids, token_units, pad: int, answers, progress: bool) -> dict:
        """The passes over checked inputs: arrays of :data:`RESULT_DOC`, stacked over pairs."""
        from tqdm.auto import tqdm

        s, model = self.settings, self.model
        dev = resolve_device(self.device)
        bf16 = resolve_bf16(s.bf16, dev)  # "auto": bf16 only where the device runs it natively
        model.to(dev)
        quad = quadrature(s.estimator, s.steps)
        ids, am = _streams(encoded.input_ids.cpu()), _streams(encoded.attention_mask.cpu())
        tt, parts = _streams(encoded.token_type_ids), _streams(encoded.parts.cpu())
        n_pairs, n_streams, width = ids.shape
        n_points = len(quad.alphas)
        with attribution_mode(model):
            eng = Engine(model, self.spec, quad, bf16, s.fast_jvp, answers)
            base = torch.stack([baseline_ids(ids[:, i], parts[:, i], pad, s.baseline) for i in range(n_streams)], 1)
            data = {
                "input_ids": ids, "attention_mask": am, "token_type_ids": None if tt is None else tt.cpu(),
                "baseline_ids": base, "parts": parts, "lengths": am.sum(-1).amax(-1).numpy(),
            }
            n_tokens = np.stack([(parts == p).sum((1, 2)).numpy() for p in range(N_PARTS)], axis=1)
            kept = None if token_units is None else TokenUnits.from_units(token_units)
            acc = Accumulator(n_pairs, eng.layout, n_tokens, (n_streams, width), kept)
            points_per_chunk = max((s.budget or default_budget(dev)) // (width * n_streams), 1)
            chunks = plan_chunks(n_pairs, n_points, points_per_chunk, overlap=not quad.is_node_rule,
                                 whole_pairs=quad.diff is not None)
            missing = [(p, a) for a in (0.0, 1.0) if not np.any(quad.alphas == a) for p in range(n_pairs)]
            with eng.recorder, eng.embedding:
                eng.endpoint_pass(acc, data, missing, points_per_chunk)
                bar = tqdm(total=n_pairs, desc=f"NIG {s.estimator}x{s.steps}", unit="pair", disable=not progress)
                done = 0
                for chunk in chunks:
                    eng.process_chunk(acc, data, chunk)
                    bad = acc.nonfinite(sorted({p for p, _, _ in chunk}))
                    if bad:
                        raise_nonfinite(*bad[0], pair_ids)
                    last_pair, _, last_stop = chunk[-1]
                    finished = last_pair + (last_stop == n_points)
                    bar.update(finished - done)
                    done = finished
                bar.close()
        return acc.finish(eng.param_dtype, pair_ids)

