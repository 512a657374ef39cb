r"""Neuron Integrated Gradients (neuron conductance, Dhamdhere et al. 2018) for cross-encoders.

Math
----
Input x = word embeddings e(x) of ``[CLS] query [SEP] passage [SEP] [PAD]...``; baseline x' = word
embeddings of the same ids with some tokens replaced by [PAD] (see :data:`BASELINES`). Only word
embeddings move along the straight path

    γ(α) = e(x') + α (e(x) − e(x')),   α ∈ [0, 1];

position / segment embeddings, token types and attention mask stay those of the real input.
F is the relevance score (:func:`target_scores`). For a unit activation a (one FFN neuron, or one
element of a head's context vector, at one token) the conductance is

    Cond(a) = ∫₀¹ ∂F/∂a(γ(α)) · ∂a(γ(α))/∂α dα,

a head's conductance is the sum over its d_head context elements, and per-part values sum over the
part's tokens. Units are the inputs of each block's output sub-module (:mod:`irneurons.units`), so
per block  Σ Cond(units) + Σ Cond(residual) = F(x) − F(x')  (completeness), reported per pair.

Estimators (S = ``steps``; a_k = a(γ(α_k)), g_k = ∂F/∂a at γ(α_k)):

- ``riemann_right``:  α_k = k/S, Cond ≈ Σ_{k=1..S} g_k (a_k − a_{k−1}).
- ``riemann_left``:   same grid, Σ g_{k−1} (a_k − a_{k−1}).
- ``trapezoid``:      same grid, Σ ½ (g_{k−1} + g_k)(a_k − a_{k−1}).
- ``gauss_legendre``: S Gauss–Legendre nodes α_i, weights w_i on [0, 1];
  Cond ≈ Σ_i w_i g_i · ȧ_i with the exact ȧ_i = ∂a/∂α from forward-mode AD (tangent e(x) − e(x')).
  Error falls exponentially in S for a smooth path.
- ``chebyshev_lobatto``: S + 1 Chebyshev–Gauss–Lobatto nodes (α = 0 and 1 included), Clenshaw–Curtis weights
  w_i; Cond ≈ Σ_i w_i g_i · (D a)_i with D the spectral differentiation matrix over the pair's own nodes
  (:func:`chebyshev_lobatto`): high-order ȧ from the activations already computed, so no forward-mode pass
  (one forward + backward per node). Error falls exponentially in S for a smooth path.
- ``captum_riemann_right``: exactly what ``captum.attr.LayerConductance(method="riemann_right",
  n_steps=S)`` computes: α_j = j/(S+1), j = 1..S+1, Σ_{j=1..S} g_j (a_{j+1} − a_j). It never visits
  α < 1/(S+1), so it is not complete; kept as a bit-for-bit reference for the oracle tests.

Every row (one pair at one α) of a chunk goes through ONE batched forward and ONE
``torch.autograd.grad`` of Σ F over the rows, w.r.t. the units of every layer at once (rows are
independent, so ∂ΣF/∂a_row = ∂F_row/∂a_row). Per-token values are reduced to parts on the device.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as Fn
from torch import nn

from .model import TARGETS, relevance, resolve_device, resolve_target  # noqa: F401  (re-exported)
from .rankers import RankerSpec, answer_ids, encode_pairs, model_kwargs, relevance_rows, spec_of
from .rankers import pad_id as rankers_pad_id
from .numerics import resolve_bf16
from .parts import BASELINES, CLS, N_PARTS, PAD, PART_NAMES, PASSAGE, QUERY, SEP1, SEP2, baseline_ids, token_parts  # noqa: F401
from .units import SLOTS, EmbeddingOverride, UnitRecorder, layout

ESTIMATORS = ("riemann_right", "riemann_left", "trapezoid", "gauss_legendre", "chebyshev_lobatto",
              "captum_riemann_right")

#: Default memory budget, rows × tokens per forward: 32 rows of 128 tokens on CPU (MiniLM-L6 peaks
#: well under 4 GiB RSS; bigger batches do not run faster on a CPU), 128 rows on a GPU.
DEFAULT_BUDGET = {"cpu": 4096, "cuda": 16384}


def default_budget(device: torch.device) -> int:
    return DEFAULT_BUDGET.get(device.type, DEFAULT_BUDGET["cpu"])

#: Result keys (N pairs, P = 6 parts, L layers, d_ff FFN neurons, H heads).
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
}

#: Floor of the denominator of the relative completeness error.
COMPLETENESS_EPS = 1e-6

#: Defaults of the per-pair completeness check (config ``nig.max_cut_relerr``, ``nig.min_abs_delta_f``,
#: ``nig.max_bad_share``; config/schema.yaml holds the same values), see :func:`check_completeness`.
MAX_CUT_RELERR = 0.25
MIN_ABS_DELTA_F = 0.05
MAX_BAD_SHARE = 0.25


class NonFiniteAttributionError(FloatingPointError):
    """A NaN or infinity appeared in an attribution."""


# --------------------------------------------------------------------------- target


# The relevance target F lives in irneurons.model (scoring and attribution must agree on it).
target_scores = relevance


# --------------------------------------------------------------------------- quadrature and chunking


@dataclass(frozen=True)
class Quadrature:
    """Points α of one pair's path and how they combine.

    ``weights`` set: node rule, Cond ≈ Σ_i w_i g_i·ȧ_i (needs tangents). ``weights`` None: difference
    rule over consecutive points with the gradient taken at ``grad_side`` ('right', 'left', 'trap').
    """

    alphas: np.ndarray
    weights: np.ndarray | None = None
    grad_side: str | None = None
    #: spectral rules: ȧ at the nodes = ``diff`` @ (a at the nodes), per pair (no forward-mode pass)
    diff: np.ndarray | None = None

    @property
    def is_node_rule(self) -> bool:
        return self.weights is not None

    @property
    def needs_tangents(self) -> bool:
        """Node rules whose ȧ comes from forward-mode AD (not from the nodes' own activations)."""
        return self.is_node_rule and self.diff is None


def chebyshev_lobatto(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Chebyshev–Gauss–Lobatto nodes on [0, 1], Clenshaw–Curtis weights and the spectral differentiation matrix.

    x_j = cos(π j / n), j = 0..n, mapped to α_j = (1 − x_j)/2 (so α_0 = 0, α_n = 1); w_j integrate the degree-n
    interpolant exactly (Clenshaw–Curtis, halved for [0, 1]); D_ij = d ℓ_j/dα (α_i) of the Lagrange basis
    (Trefethen's ``cheb``, times dx/dα = −2): (D a)_i is the exact derivative of the polynomial interpolating a at
    the nodes, spectrally accurate for analytic a.
    """
    if n < 1:
        raise ValueError("chebyshev_lobatto needs n ≥ 1 (n + 1 nodes)")
    j = np.arange(n + 1)
    x = np.cos(np.pi * j / n)
    c = np.where((j == 0) | (j == n), 2.0, 1.0) * (-1.0) ** j
    dx = x[:, None] - x[None, :]
    d = np.outer(c, 1.0 / c) / (dx + np.eye(n + 1))
    d -= np.diag(d.sum(axis=1))
    # Clenshaw–Curtis weights on [-1, 1] (Trefethen, "Spectral Methods in MATLAB", clencurt)
    theta = np.pi * j / n
    w = np.zeros(n + 1)
    v = np.ones(n - 1)
    inner = j[1:-1]
    if n % 2 == 0:
        w[0] = w[n] = 1.0 / (n**2 - 1)
        for k in range(1, n // 2):
            v -= 2.0 * np.cos(2 * k * theta[inner]) / (4 * k**2 - 1)
        v -= np.cos(n * theta[inner]) / (n**2 - 1)
    else:
        w[0] = w[n] = 1.0 / n**2
        for k in range(1, (n - 1) // 2 + 1):
            v -= 2.0 * np.cos(2 * k * theta[inner]) / (4 * k**2 - 1)
    w[inner] = 2.0 * v / n
    return (1.0 - x) / 2.0, w / 2.0, -2.0 * d


def quadrature(estimator: str, steps: int) -> Quadrature:
    """Points (and weights) for an estimator with ``steps`` intervals / nodes."""
    if steps < 1:
        raise ValueError("steps must be ≥ 1")
    if estimator in ("riemann_right", "riemann_left", "trapezoid"):
        side = {"riemann_right": "right", "riemann_left": "left", "trapezoid": "trap"}[estimator]
        return Quadrature(np.arange(steps + 1, dtype=np.float64) / steps, grad_side=side)
    if estimator == "gauss_legendre":
        x, w = np.polynomial.legendre.leggauss(steps)
        return Quadrature((x + 1.0) / 2.0, weights=w / 2.0)
    if estimator == "chebyshev_lobatto":
        alphas, weights, diff = chebyshev_lobatto(steps)
        return Quadrature(alphas, weights=weights, diff=diff)
    if estimator == "captum_riemann_right":
        # Same floats as captum: torch.linspace(1/n, 1, n).tolist() with n = steps + 1.
        n = steps + 1
        return Quadrature(np.array(torch.linspace(1 / n, 1, n).tolist(), dtype=np.float64), grad_side="left")
    raise ValueError(f"unknown estimator {estimator!r}; choose one of {ESTIMATORS}")


def plan_chunks(n_pairs: int, n_points: int, rows_per_chunk: int, overlap: bool,
                whole_pairs: bool = False) -> list[list[tuple[int, int, int]]]:
    """Pack every pair's points into chunks of at most ``rows_per_chunk`` rows.

    A chunk is a list of segments (pair, start, stop): points start..stop-1 of that pair. A pair may
    be split over chunks; with ``overlap`` (difference rules) consecutive segments share one point so
    each interval lies inside one segment. Chunks are filled completely before starting a new one.
    ``whole_pairs`` (spectral rules, which differentiate over all of a pair's nodes): every pair's points
    lie in one chunk (a chunk then holds max(1, rows_per_chunk // n_points) pairs).
    """
    if whole_pairs:
        per_chunk = max(1, rows_per_chunk // n_points)
        return [[(p, 0, n_points) for p in range(i, min(i + per_chunk, n_pairs))] for i in range(0, n_pairs, per_chunk)]
    min_seg = 2 if overlap else 1
    if rows_per_chunk < min_seg:
        raise ValueError(f"budget allows {rows_per_chunk} rows per forward, need at least {min_seg}")
    chunks, current, room = [], [], rows_per_chunk
    for pair in range(n_pairs):
        start = 0
        while True:
            if room < min_seg:
                chunks.append(current)
                current, room = [], rows_per_chunk
            stop = min(n_points, start + room)
            current.append((pair, start, stop))
            room -= stop - start
            if stop == n_points:
                break
            start = stop - 1 if overlap else stop
    if current:
        chunks.append(current)
    return chunks


# --------------------------------------------------------------------------- fast forward-mode linear


class _LinearJVP(torch.autograd.Function):
    """y = x Wᵀ + b with a forward-mode rule that skips the weight tangent.

    Stock ``addmm`` forward-AD also multiplies the primal input by the (zero) weight tangent, which
    doubles the matmul cost of a dual forward; weights never move along the NIG path.
    """

    @staticmethod
    def forward(x, weight, bias):
        return Fn.linear(x, weight, bias)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.weight = inputs[1]
        ctx.x_dtype, ctx.out_dtype = inputs[0].dtype, output.dtype

    @staticmethod
    def backward(ctx, grad):
        w = ctx.weight.to(grad.dtype)
        return (grad @ w).to(ctx.x_dtype), None, None

    @staticmethod
    def jvp(ctx, x_t, weight_t, bias_t):
        return Fn.linear(x_t.to(ctx.out_dtype), ctx.weight.to(ctx.out_dtype))


@contextlib.contextmanager
def fast_linear_jvp(model: nn.Module):
    """Route every ``nn.Linear`` of ``model`` through :class:`_LinearJVP` (weights must not need grad)."""
    patched = [m for m in model.modules() if type(m) is nn.Linear]
    for m in patched:
        m.forward = (lambda mod: (lambda x: _LinearJVP.apply(x, mod.weight, mod.bias)))(m)
    try:
        yield
    finally:
        for m in patched:
            m.__dict__.pop("forward", None)


@contextlib.contextmanager
def _attribution_mode(model: nn.Module):
    """eval() and no parameter gradients during attribution; restored afterwards.

    Without weight gradients the backward only propagates to the units, and autograd saves fewer
    tensors for it.
    """
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


# --------------------------------------------------------------------------- engine


class _Engine:
    """One model prepared for attribution: its ranker spec, hooks, layout, device, dtype."""

    def __init__(self, model, spec: RankerSpec, bf16: bool, fast_jvp: bool, answers=None):
        self.model = model
        self.layout = layout(model)
        if spec.kind == "cross_encoder":
            spec = replace(spec, target=resolve_target(spec.target, int(model.config.num_labels)))
        self.spec = spec
        self.answers = answers
        self.device = next(model.parameters()).device
        self.bf16 = bf16
        self.fast_jvp = fast_jvp
        self.recorder = UnitRecorder(model)
        self.embedding = EmbeddingOverride(model)
        self.param_dtype = self.embedding.module.weight.dtype
        # Accumulate in fp32 (fp64 for fp64 models, e.g. oracles); bf16 only in the forward.
        self.acc_dtype = torch.float64 if self.param_dtype == torch.float64 else torch.float32

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            self.embedding.value = None
            return self.embedding.module(ids)

    def _arm(self, value: torch.Tensor) -> None:
        """Override the word embeddings for the next model forward and clear ``fired``: lookups made
        outside the model (:meth:`embed`) or by an earlier forward must not count for this one."""
        self.embedding.fired = False
        self.embedding.value = value

    def _check_fired(self) -> None:
        """After an armed forward: the override must have replaced the model's own lookup."""
        if not self.embedding.fired:
            raise RuntimeError(
                "word-embedding hook did not fire: the model's forward bypassed its word-embedding table, "
                "so the interpolation path never entered it"
            )

    def _autocast(self):
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def _scores(self, kwargs: dict, n_streams: int) -> torch.Tensor:
        with self._autocast():
            return relevance_rows(self.spec, self.model, kwargs, n_streams, self.answers)

    def _unit_tangents(self, kwargs: dict, gamma: torch.Tensor, tangent: torch.Tensor, n_streams: int) -> dict:
        """∂v/∂α of every recorded tensor (by ``id`` of the tensor recorded in the graph pass, see
        :meth:`forward`): a no-grad forward carrying dual numbers (forward-mode AD) with tangent
        dγ/dα = e(x) − e(x') on the word embeddings.

        A separate no-grad pass rather than dual numbers inside the graph-recording forward: with a
        graph, autograd also records every tangent operation (for higher-order derivatives), which
        measured slower and about twice the memory (MiniLM, 32 rows × 128 tokens: 3.9 vs 1.8 GiB).
        """
        jvp_ctx = fast_linear_jvp(self.model) if self.fast_jvp else contextlib.nullcontext()
        self.recorder.reset()
        with torch.no_grad(), fwAD.dual_level(), jvp_ctx:
            self._arm(fwAD.make_dual(gamma, tangent.to(gamma.dtype)))
            self._scores(kwargs, n_streams)
            self._check_fired()
            self.recorder.check_fired()
            tangents = {}
            for name in VALUE_SLOTS:
                for i, u in enumerate(getattr(self.recorder, name)):
                    if u is None:
                        continue
                    t = fwAD.unpack_dual(u).tangent
                    if t is None and self.recorder.streams[i] == "decoder":
                        t = torch.zeros_like(u)  # the decoder stream before the first cross-attention is constant
                    if t is None:
                        raise RuntimeError(f"forward-mode AD lost the tangent before {name}[{i}]")
                    tangents[(name, i)] = t
        self.embedding.value = None
        return tangents

    def forward(self, kwargs: dict, gamma, n_streams: int = 1, tangent=None, grad=True):
        """Batched forward on word embeddings ``gamma`` ([S·R, T, E], stream-major): (F per point, recorded
        tensors {slot: [per layer]}, tangents {(slot, layer): ∂v/∂α} | None).

        With ``grad`` the recorded tensors are in the graph, ready for one ``torch.autograd.grad``.
        With ``tangent`` a forward-mode pass first gives each value tensor's exact ∂v/∂α.
        """
        gamma = gamma.detach()
        tangents = None if tangent is None else self._unit_tangents(kwargs, gamma, tangent, n_streams)
        self.recorder.reset()
        with contextlib.nullcontext() if grad else torch.no_grad():
            # The graph starts at the path, not at the (frozen) weights.
            self._arm(gamma.requires_grad_(grad))
            scores = self._scores(kwargs, n_streams)
            self.recorder.check_fired()
            recorded = {name: list(getattr(self.recorder, name)) for name in SLOTS}
        self.embedding.value = None
        self._check_fired()
        return scores, recorded, tangents


#: Recorded slots whose values move along the path (their tangents / differences are needed).
VALUE_SLOTS = ("ffn", "heads", "ffn_rv", "heads_rv", "kv")


@dataclass
class _PartReducer:
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
    def build(cls, parts_rows, slots, weights, n_slots, keep=None) -> "_PartReducer":
        onehot = Fn.one_hot(parts_rows, N_PARTS).transpose(1, 2).to(weights.dtype) * weights[:, None, None]
        return cls(onehot, slots if keep is None else slots[keep], keep, n_slots)

    def __call__(self, values: torch.Tensor) -> torch.Tensor:
        per_row = torch.bmm(self.onehot, values.to(self.onehot.dtype))  # [R, P, D]
        if self.keep is not None:
            per_row = per_row[self.keep]
        out = torch.zeros(self.n_slots, *per_row.shape[1:], dtype=per_row.dtype, device=per_row.device)
        return out.index_add_(0, self.slots, per_row)


class _Accumulator:
    """Host-side float64 results, filled from small per-chunk device reductions ([pairs, P, ...])."""

    def __init__(self, n_pairs: int, lay, n_tokens: np.ndarray):
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
        self.absact_count = np.zeros((n_pairs, N_PARTS, L))
        self.n_tokens = n_tokens

    def add(self, key: str, pairs: np.ndarray, values: torch.Tensor) -> None:
        # ``pairs`` are unique within a chunk, so fancy-index += is exact.
        self.arr[key][pairs] += values.detach().to("cpu", torch.float64).numpy()

    def nonfinite(self, pairs: Sequence[int]) -> list[tuple[int, str]]:
        """(pair, key) for every listed pair holding a NaN/inf."""
        return [
            (int(p), key)
            for p in pairs
            for key, arr in self.arr.items()
            if not key.startswith("f_") and not np.isfinite(arr[p]).all()
        ]


def _raise_nonfinite(pair: int, key: str, pair_ids: Sequence | None):
    name = f"pair index {pair}" + (f" (id {pair_ids[pair]!r})" if pair_ids is not None else "")
    raise NonFiniteAttributionError(f"NaN/inf in the '{key}' attribution of {name}")


@dataclass
class _Chunk:
    """Points of one forward: point r is pair ``rows_pair[r]`` at α = ``alphas[r]``; model rows are the
    points' streams, stream-major ([S·R, ...])."""

    rows_pair: np.ndarray  # [R] pair index
    alphas: np.ndarray  # [R] α
    slot_pairs: np.ndarray  # [n] distinct pairs of the chunk (sorted)
    slots: torch.Tensor  # [R] point → slot
    n_streams: int
    parts_rows: torch.Tensor  # [S·R, T] part index per token
    kwargs: dict  # model inputs of the S·R rows
    gamma: torch.Tensor  # [S·R, T, E] word embeddings on the path
    tangent: torch.Tensor  # [S·R, T, E] dγ/dα = e(x) − e(x')

    def tile(self, x):
        """A per-point tensor / array repeated for every stream (stream-major)."""
        if isinstance(x, np.ndarray):
            return np.tile(x, self.n_streams)
        return x.repeat(self.n_streams, *([1] * (x.dim() - 1)))


def _chunk_rows(eng, data, rows_pair: np.ndarray, alphas: np.ndarray) -> _Chunk:
    slot_pairs, slots_np = np.unique(rows_pair, return_inverse=True)
    # Trim padding columns beyond the chunk's longest pair: pad keys are masked out, so results
    # are unchanged and the forward is cheaper.
    width = int(data["lengths"][slot_pairs].max())
    dev = eng.device
    pick = torch.as_tensor(slot_pairs)
    S = data["input_ids"].shape[1]
    slots = torch.as_tensor(slots_np, device=dev)

    def rows(name):
        """[n, S, T] of the chunk's pairs → [S·R, T], stream-major."""
        if data[name] is None:
            return None
        x = data[name][pick, :, :width].to(dev)[slots]  # [R, S, T]
        return x.transpose(0, 1).reshape(S * len(rows_pair), width)

    ids, base = rows("input_ids"), rows("baseline_ids")
    e_x, e_b = eng.embed(ids), eng.embed(base)
    alpha = torch.as_tensor(np.tile(alphas, S), dtype=e_x.dtype, device=dev)[:, None, None]
    delta = e_x - e_b
    return _Chunk(
        rows_pair=rows_pair, alphas=alphas, slot_pairs=slot_pairs, slots=slots, n_streams=S,
        parts_rows=rows("parts"), kwargs=model_kwargs(eng.spec, ids, rows("attention_mask"), rows("token_type_ids")),
        gamma=e_b + alpha * delta,  # γ(α) = e(x') + α (e(x) − e(x'))
        tangent=delta,
    )


def _row_parts(ch: _Chunk, value: torch.Tensor, sel=None) -> torch.Tensor:
    """Part per token of a recorded tensor's rows: the input's parts, or (decoder positions) the suffix slot."""
    parts = ch.parts_rows if sel is None else ch.parts_rows[sel]
    if value.shape[1] == parts.shape[1]:
        return parts
    return torch.full(value.shape[:2], SEP2, dtype=parts.dtype, device=parts.device)


def _record_endpoints(eng, acc: _Accumulator, ch: _Chunk, scores: torch.Tensor, rec: dict) -> None:
    """F at α = 0 / 1 points, and Σ |activation| at α = 1 rows (divided by counts in _finish)."""
    lay = eng.layout
    for value, key in ((0.0, "f_baseline"), (1.0, "f_x")):
        idx = np.flatnonzero(ch.alphas == value)
        if idx.size:
            acc.arr[key][ch.rows_pair[idx]] = scores.detach()[torch.as_tensor(idx, device=eng.device)].double().cpu().numpy()
    ones = np.flatnonzero(ch.tile(ch.alphas) == 1.0)
    if ones.size == 0:
        return
    sel = torch.as_tensor(ones, device=eng.device)
    n = len(ch.slot_pairs)
    slots = ch.tile(ch.slots)[sel]
    weights = torch.ones(len(ones), dtype=eng.acc_dtype, device=eng.device)
    reducers = {}
    ffn, heads, counts = [], [], []
    for layer in range(lay.n_layers):
        a = rec["ffn"][layer][sel].detach().to(eng.acc_dtype).abs()
        parts = _row_parts(ch, a, sel)
        key = tuple(parts.shape)
        if key not in reducers:
            reducers[key] = _PartReducer.build(parts, slots, weights, n)
        reduce = reducers[key]
        ffn.append(reduce(a))
        h = rec["heads"][layer][sel].detach().to(eng.acc_dtype).unflatten(-1, (lay.n_heads, lay.d_head))
        heads.append(reduce(torch.linalg.vector_norm(h, dim=-1)))
        counts.append(reduce(torch.ones(*a.shape[:2], 1, dtype=eng.acc_dtype, device=eng.device))[..., 0])
    # Pad tokens: not part of the pair, and chunks trim them, so their mean is defined as 0.
    ffn, heads = torch.stack(ffn, dim=2), torch.stack(heads, dim=2)
    ffn[:, PAD], heads[:, PAD] = 0, 0
    acc.add("ffn_absact", ch.slot_pairs, ffn)
    acc.add("heads_absact", ch.slot_pairs, heads)
    acc.absact_count[ch.slot_pairs] += torch.stack(counts, dim=2).cpu().double().numpy()


def _piece(eng, quad: Quadrature, value: torch.Tensor, g: torch.Tensor, t: torch.Tensor | None) -> torch.Tensor:
    """Integrand pieces of one tensor: g ⊙ v̇ (node rule) or g_side ⊙ (v_{r+1} − v_r)."""
    g = g.to(eng.acc_dtype)
    if quad.is_node_rule:
        return g * t.to(eng.acc_dtype)
    v = value.detach().to(eng.acc_dtype)
    if quad.grad_side == "right":
        gs = g[1:]
    elif quad.grad_side == "left":
        gs = g[:-1]
    else:
        gs = 0.5 * (g[1:] + g[:-1])
    return gs * (v[1:] - v[:-1])


def _cut_terms(eng, layer: int) -> dict[str, list[tuple[str, str]]]:
    """Per output key, the (value slot, gradient slot) terms of one layer's cuts (see :mod:`irneurons.architectures`)."""
    memory = [("kv", m) for m in eng.recorder.memory_terms(layer)]
    return {
        "ffn": [(("ffn", layer), ("ffn", layer))],
        "heads": [(("heads", layer), ("heads", layer))],
        "ffn_resid": [(("ffn_rv", layer), ("ffn_rs", layer))] + [(m, m) for m in memory],
        "heads_resid": [(("heads_rv", layer), ("heads_rs", layer))] + [(m, m) for m in memory],
    }


def _accumulate_conductance(eng, acc, quad, ch: _Chunk, rec, grads, tangents, seg_of_row, k_of_row) -> None:
    """Conductance of every unit and residual, reduced to [pairs, parts] on the device, layer by
    layer so only one layer's pieces are alive at a time."""
    lay = eng.layout
    dev = eng.device
    n = len(ch.slot_pairs)
    slots = ch.tile(ch.slots)
    if quad.is_node_rule:
        weights = torch.as_tensor(ch.tile(quad.weights[k_of_row]), dtype=eng.acc_dtype, device=dev)
        keep = None
    else:
        segs = np.concatenate([seg_of_row + s * (seg_of_row.max() + 1) for s in range(ch.n_streams)])
        keep_np = segs[1:] == segs[:-1]
        weights = torch.ones(len(keep_np), dtype=eng.acc_dtype, device=dev)
        keep = None if keep_np.all() else torch.as_tensor(keep_np, device=dev)
        slots = slots[:-1]
    reducers = {}

    def reducer(value):
        parts = _row_parts(ch, value)
        if not quad.is_node_rule:
            parts = parts[:-1]
        key = tuple(parts.shape)
        if key not in reducers:
            reducers[key] = _PartReducer.build(parts, slots, weights, n, keep=keep)
        return reducers[key]

    out = {"ffn": [], "ffn_resid": [], "heads": [], "heads_resid": []}
    for layer in range(lay.n_layers):
        for key, terms in _cut_terms(eng, layer).items():
            total = 0
            for (vslot, vi), (gslot, gi) in terms:
                value = rec[vslot][vi]
                c = _piece(eng, quad, value, grads[(gslot, gi)], None if tangents is None else tangents[(vslot, vi)])
                if key == "heads":
                    c = c.unflatten(-1, (lay.n_heads, lay.d_head)).sum(-1)
                elif key.endswith("resid"):
                    c = c.sum(-1, keepdim=True)
                reduced = reducer(value)(c)
                total = total + (reduced[..., 0] if key.endswith("resid") else reduced)
            out[key].append(total)
    for key, values in out.items():
        acc.add(key, ch.slot_pairs, torch.stack(values, dim=2))


def _gradients(scores: torch.Tensor, rec: dict) -> dict:
    """∂ΣF/∂t for every recorded tensor that is a gradient slot of a cut, in ONE ``autograd.grad``."""
    wanted = [(name, i) for name in ("ffn", "heads", "ffn_rs", "heads_rs", "kv")
              for i, t in enumerate(rec[name]) if t is not None]
    unique: dict[int, torch.Tensor] = {}
    for name, i in wanted:
        unique.setdefault(id(rec[name][i]), rec[name][i])
    tensors = list(unique.values())
    grads = dict(zip(unique, torch.autograd.grad(scores.sum(), tensors, allow_unused=True)))
    out = {}
    for name, i in wanted:
        g = grads[id(rec[name][i])]
        out[(name, i)] = torch.zeros_like(rec[name][i]) if g is None else g
    return out


def _endpoint_pass(eng, acc, data, todo: list[tuple[int, float]], points_per_chunk: int) -> None:
    """No-grad forward at α = 0 / 1 for pairs whose grid lacks those points (F and |activation|)."""
    for i in range(0, len(todo), points_per_chunk):
        part = todo[i : i + points_per_chunk]
        ch = _chunk_rows(eng, data, np.array([p for p, _ in part]), np.array([a for _, a in part]))
        scores, rec, _ = eng.forward(ch.kwargs, ch.gamma, ch.n_streams, grad=False)
        _record_endpoints(eng, acc, ch, scores, rec)


def _process_chunk(eng, acc: _Accumulator, quad: Quadrature, data: dict, chunk) -> None:
    """Forward, ONE backward of Σ F over the chunk's points (all layers' tensors at once), reduction."""
    rows_pair = np.concatenate([np.full(b - a, p) for p, a, b in chunk])
    k_of_row = np.concatenate([np.arange(a, b) for _, a, b in chunk])
    seg_of_row = np.concatenate([np.full(b - a, s) for s, (_, a, b) in enumerate(chunk)])
    ch = _chunk_rows(eng, data, rows_pair, quad.alphas[k_of_row])
    scores, rec, tangents = eng.forward(ch.kwargs, ch.gamma, ch.n_streams,
                                        ch.tangent if quad.needs_tangents else None)
    if quad.diff is not None:
        tangents = _spectral_tangents(eng, quad, rec, ch.n_streams)
    grads = _gradients(scores, rec)
    _accumulate_conductance(eng, acc, quad, ch, rec, grads, tangents, seg_of_row, k_of_row)
    _record_endpoints(eng, acc, ch, scores, rec)


def _spectral_tangents(eng, quad: Quadrature, rec: dict, n_streams: int) -> dict:
    """ȧ = D a per pair from the nodes' own activations (whole pairs per chunk, nodes in order, stream-major
    rows): {(slot, layer): tensor} like the forward-mode tangents."""
    diff = torch.as_tensor(quad.diff, dtype=eng.acc_dtype, device=eng.device)
    n = diff.shape[0]
    out = {}
    for name in VALUE_SLOTS:
        for i, v in enumerate(rec[name]):
            if v is None:
                continue
            x = v.detach().to(eng.acc_dtype)
            grouped = x.reshape(n_streams, -1, n, *x.shape[1:])  # [S, pairs, nodes, T, D]
            out[(name, i)] = torch.einsum("ij,spj...->spi...", diff, grouped).reshape(x.shape)
    return out


def _finish(acc: _Accumulator, param_dtype, pair_ids: Sequence | None) -> dict[str, np.ndarray]:
    """Means of |activation|, completeness sums and errors; cast to the output dtype."""
    arr = acc.arr
    for key in ("f_x", "f_baseline"):
        bad = np.flatnonzero(~np.isfinite(arr[key]))
        if bad.size:
            _raise_nonfinite(int(bad[0]), key, pair_ids)
    counts = acc.absact_count[:, :, :, None]
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
    result["n_tokens"] = acc.n_tokens.astype(np.int32)
    return result


def _streams(x: torch.Tensor | None) -> torch.Tensor | None:
    """[N, T] → [N, 1, T]; [N, S, T] unchanged."""
    return None if x is None else (x[:, None] if x.dim() == 2 else x)


def attribute_ids(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    token_type_ids: torch.Tensor | None = None,
    *,
    cls_id: int | None = None,
    sep_id: int | None = None,
    pad_id: int,
    parts: torch.Tensor | None = None,
    spec: RankerSpec | None = None,
    answers: tuple[int, int] | None = None,
    pair_ids: Sequence | None = None,
    baseline: str = "pad_query",
    target: str = "auto",
    estimator: str = "gauss_legendre",
    steps: int = 16,
    budget: int | None = None,
    device: str | torch.device | None = None,
    bf16: bool = False,
    fast_jvp: bool = True,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """NIG of every FFN neuron and head for tokenized pairs.

    ``input_ids`` etc. are [N, T] (one stream) or [N, S, T] (S streams; bi-encoders: query, passage).
    ``parts`` ([N, (S,) T] part slots) default: read ``[CLS] q [SEP] p [SEP]`` from ``cls_id`` / ``sep_id``.
    ``spec``: the model kind (default: the spec attached to the model, see :mod:`irneurons.rankers`;
    ``target`` applies to cross-encoders); ``answers``: answer token ids of prompted kinds.
    ``budget``: max rows × tokens per forward (rows = pairs × path points × streams; default
    :func:`default_budget`); a pair's points may be split over forwards. Moves ``model`` to ``device``
    (default: cuda if available). Returns the arrays of :data:`RESULT_DOC`, stacked over pairs. Raises
    :class:`NonFiniteAttributionError` naming the pair if an attribution is NaN/inf.
    """
    from tqdm.auto import tqdm

    dev = resolve_device(device)
    bf16 = resolve_bf16(bf16, dev)  # "auto": bf16 only where the device runs it natively
    model.to(dev)
    spec = spec or spec_of(model, target)
    quad = quadrature(estimator, steps)
    ids, am, tt = _streams(input_ids.cpu()), _streams(attention_mask.cpu()), _streams(token_type_ids)
    n_pairs, n_streams, width = ids.shape
    if parts is None:
        if n_streams != 1 or cls_id is None or sep_id is None:
            raise ValueError("parts are needed for several streams or without cls_id / sep_id")
        parts = token_parts(ids[:, 0], None, am[:, 0], cls_id, sep_id)
    parts = _streams(parts.cpu())
    n_points = len(quad.alphas)
    with _attribution_mode(model):
        eng = _Engine(model, spec, bf16, fast_jvp, answers)
        base = torch.stack([baseline_ids(ids[:, s], parts[:, s], pad_id, baseline) for s in range(n_streams)], 1)
        data = {
            "input_ids": ids, "attention_mask": am, "token_type_ids": None if tt is None else tt.cpu(),
            "baseline_ids": base, "parts": parts, "lengths": am.sum(-1).amax(-1).numpy(),
        }
        n_tokens = np.stack([(parts == p).sum((1, 2)).numpy() for p in range(N_PARTS)], axis=1)
        acc = _Accumulator(n_pairs, eng.layout, n_tokens)
        points_per_chunk = max((budget or default_budget(dev)) // (width * n_streams), 1)
        chunks = plan_chunks(n_pairs, n_points, points_per_chunk, overlap=not quad.is_node_rule,
                             whole_pairs=quad.diff is not None)
        missing = [(p, a) for a in (0.0, 1.0) if not np.any(quad.alphas == a) for p in range(n_pairs)]
        with eng.recorder, eng.embedding:
            _endpoint_pass(eng, acc, data, missing, points_per_chunk)
            bar = tqdm(total=n_pairs, desc=f"NIG {estimator}x{steps}", unit="pair", disable=not progress)
            done = 0
            for chunk in chunks:
                _process_chunk(eng, acc, quad, data, chunk)
                bad = acc.nonfinite(sorted({p for p, _, _ in chunk}))
                if bad:
                    _raise_nonfinite(*bad[0], pair_ids)
                last_pair, _, last_stop = chunk[-1]
                finished = last_pair + (last_stop == n_points)
                bar.update(finished - done)
                done = finished
            bar.close()
    return _finish(acc, eng.param_dtype, pair_ids)


def attribute(
    model: nn.Module,
    tokenizer,
    queries: Sequence[str],
    passages: Sequence[str],
    *,
    pair_ids: Sequence | None = None,
    baseline: str = "pad_query",
    target: str = "auto",
    estimator: str = "gauss_legendre",
    steps: int = 16,
    max_length: int = 128,
    budget: int | None = None,
    device: str | torch.device | None = None,
    bf16: bool = False,
    progress: bool = True,
    max_query_share: float | None = None,
    spec: RankerSpec | None = None,
) -> dict[str, np.ndarray]:
    """NIG for (query, passage) pairs: tokenizes as the ranker does (:func:`irneurons.rankers.encode_pairs`,
    kind from ``spec`` or the model's attached spec), then :func:`attribute_ids`.

    Pairs are padded to the longest pair (≤ ``max_length``); queries over their budget are cut first
    (:func:`irneurons.model.truncate_queries`, ``max_query_share`` None = the tokenizer's policy), then passages.
    """
    if len(queries) != len(passages):
        raise ValueError(f"{len(queries)} queries but {len(passages)} passages")
    spec = spec or spec_of(model, target)
    enc = encode_pairs(spec, tokenizer, queries, passages, max_length, max_query_share)
    answers = answer_ids(spec, tokenizer) if spec.answers else None
    return attribute_ids(
        model, enc.input_ids, enc.attention_mask, enc.token_type_ids, parts=enc.parts, spec=spec, answers=answers,
        pad_id=rankers_pad_id(tokenizer), pair_ids=pair_ids, baseline=baseline, target=target, estimator=estimator,
        steps=steps, budget=budget, device=device, bf16=bf16, progress=progress,
    )


# --------------------------------------------------------------------------- completeness check


class CompletenessError(RuntimeError):
    """Too many pairs of a shard violate completeness (Σ conductance + residual ≠ F(x) − F(x'))."""


def floored_cut_relerr(result: dict, floor: float = MIN_ABS_DELTA_F, block: str = "ffn") -> np.ndarray:
    """[N, L] relative cut error |Σ units + residual − ΔF| / max(|ΔF|, floor) of ``block`` (ffn | heads).

    Unlike ``<block>_cut_relerr`` (denominator floored at :data:`COMPLETENESS_EPS`), the floor here is in
    the units of F (logits): a pair whose ΔF is near 0 is judged by its absolute error / ``floor``.
    """
    delta = np.asarray(result["f_x"], np.float64) - np.asarray(result["f_baseline"], np.float64)
    denom = np.maximum(np.abs(delta), max(float(floor), COMPLETENESS_EPS))[:, None]
    return np.abs(np.asarray(result[f"{block}_cut_sum"], np.float64) - delta[:, None]) / denom


def check_completeness(
    result: dict,
    pair_ids: Sequence | None = None,
    max_relerr: float = MAX_CUT_RELERR,
    floor: float = MIN_ABS_DELTA_F,
    max_share: float = MAX_BAD_SHARE,
    log=None,
) -> dict:
    """Per-pair completeness check of an attribution result; returns a JSON-ready report.

    A pair is *over threshold* when the median over layers of its FFN block's relative cut error
    (:func:`floored_cut_relerr` with ``floor`` on |F(x) − F(x')|) exceeds ``max_relerr`` (a NaN counts as
    over). ``log`` (e.g. ``print``) gets one line per such pair. Raises :class:`CompletenessError` with a
    one-line message naming the pairs (and their errors) when their share of the pairs exceeds ``max_share``.
    """
    n = len(result["f_x"]) if result else 0
    ids = [str(p) for p in (pair_ids if pair_ids is not None else range(n))]
    if len(ids) != n:
        raise ValueError(f"{len(ids)} pair ids for {n} pairs")
    err = np.median(floored_cut_relerr(result, floor), axis=1) if n else np.zeros(0)
    over = ~(err <= max_relerr)
    delta = np.abs(np.asarray(result["f_x"]) - np.asarray(result["f_baseline"])) if n else np.zeros(0)
    bad = {ids[i]: float(err[i]) for i in np.flatnonzero(over)}
    report = {
        "max_cut_relerr": float(max_relerr), "min_abs_delta_f": float(floor), "max_bad_share": float(max_share),
        "n_pairs": n, "n_over": len(bad), "bad_share": len(bad) / n if n else 0.0,
        "n_floored": int((delta < floor).sum()),
        "ffn_cut_relerr_median": {
            "median": float(np.median(err)) if n else None,
            "p90": float(np.quantile(err, 0.9)) if n else None,
            "max": float(err.max()) if n else None,
        },
        "over_threshold": bad,
    }
    if log is not None:
        for pid, e in bad.items():
            log(f"pair {pid}: median-over-layers FFN relative cut error {e:.3g} > nig.max_cut_relerr={max_relerr}")
    if report["bad_share"] > max_share:
        listed = ", ".join(f"{pid} ({e:.3g})" for pid, e in bad.items())
        raise CompletenessError(
            f"completeness check failed: {len(bad)} of {n} pairs ({report['bad_share']:.0%}) exceed "
            f"nig.max_cut_relerr={max_relerr} (median over layers of the FFN relative cut error, |ΔF| floored at "
            f"nig.min_abs_delta_f={floor}), more than nig.max_bad_share={max_share}: {listed}"
        )
    return report


# --------------------------------------------------------------------------- shards


def save_shard(path: str | os.PathLike, result: dict[str, np.ndarray], metadata: dict) -> None:
    """Write ``result`` + ``metadata`` (as a JSON string field) to ``path`` (.npz) atomically.

    Writes a temp file in the same directory and ``os.replace``s it, so readers never see a
    partial shard; on any error the temp file is removed.
    """
    path = os.fspath(path)
    if "metadata" in result:
        raise ValueError("'metadata' is reserved in a shard")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    meta = json.dumps(metadata, sort_keys=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, metadata=np.array(meta), **result)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def load_shard(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """Read a shard written by :func:`save_shard`: (arrays, metadata)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != "metadata"}
        metadata = json.loads(str(z["metadata"])) if "metadata" in z.files else {}
    return arrays, metadata
