"""The NIG engine: one model prepared for attribution, and the batched passes over chunks of path points.

Per chunk (:meth:`Engine.process_chunk`): ONE batched forward over every row (a pair at one α, one row per
stream), ONE ``torch.autograd.grad`` of Σ F w.r.t. the recorded tensors of every layer (rows are independent,
so ∂ΣF/∂a_row = ∂F_row/∂a_row), integrand pieces g ⊙ ȧ (node rules) or g ⊙ Δa (difference rules) per
cut (:mod:`irneurons.units.architectures`), reduced to token parts on the device
(:mod:`irneurons.attribution.accumulate`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD
from torch import nn

from irneurons.attribution.accumulate import Accumulator, PartReducer
from irneurons.attribution.linear_jvp import fast_linear_jvp
from irneurons.rankers.relevance import resolve_target
from irneurons.rankers.parts import PAD, SEP2
from irneurons.attribution.quadrature import Quadrature
from irneurons.rankers.kinds import RankerSpec
from irneurons.rankers.relevance import model_kwargs, relevance_rows
from irneurons.units.hooks import SLOTS, EmbeddingOverride, UnitRecorder, layout

#: Recorded slots whose values move along the path (their tangents / differences are needed).
VALUE_SLOTS = ("ffn", "heads", "ffn_rv", "heads_rv", "kv")


@contextlib.contextmanager
def attribution_mode(model: nn.Module):
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


@dataclass
class Chunk:
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

    def row_parts(self, value: torch.Tensor, sel=None) -> torch.Tensor:
        """Part per token of a recorded tensor's rows: the input's parts, or (decoder positions) the suffix slot."""
        parts = self.parts_rows if sel is None else self.parts_rows[sel]
        if value.shape[1] == parts.shape[1]:
            return parts
        return torch.full(value.shape[:2], SEP2, dtype=parts.dtype, device=parts.device)


class Engine:
    """One model prepared for attribution: its ranker spec, hooks, layout, device, dtype, and the passes."""

    def __init__(self, model, spec: RankerSpec, quad: Quadrature, bf16: bool, fast_jvp: bool, answers=None):
        self.model = model
        self.layout = layout(model)
        if spec.kind_info.head:
            spec = replace(spec, target=resolve_target(spec.target, int(model.config.num_labels)))
        self.spec = spec
        self.quad = quad
        self.answers = answers
        self.device = next(model.parameters()).device
        self.bf16 = bf16
        self.fast_jvp = fast_jvp
        self.recorder = UnitRecorder(model)
        self.embedding = EmbeddingOverride(model)
        self.param_dtype = self.embedding.module.weight.dtype
        # Accumulate in fp32 (fp64 for fp64 models, e.g. oracles); bf16 only in the forward.
        self.acc_dtype = torch.float64 if self.param_dtype == torch.float64 else torch.float32

    # ------------------------------------------------------------------ forwards

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

    # ------------------------------------------------------------------ chunks

    def chunk(self, data: dict, rows_pair: np.ndarray, alphas: np.ndarray) -> Chunk:
        """The model inputs and path embeddings γ(α) = e(x') + α (e(x) − e(x')) of the given points."""
        slot_pairs, slots_np = np.unique(rows_pair, return_inverse=True)
        # Trim padding columns beyond the chunk's longest pair: pad keys are masked out, so results
        # are unchanged and the forward is cheaper.
        width = int(data["lengths"][slot_pairs].max())
        dev = self.device
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
        e_x, e_b = self.embed(ids), self.embed(base)
        alpha = torch.as_tensor(np.tile(alphas, S), dtype=e_x.dtype, device=dev)[:, None, None]
        delta = e_x - e_b
        return Chunk(
            rows_pair=rows_pair, alphas=alphas, slot_pairs=slot_pairs, slots=slots, n_streams=S,
            parts_rows=rows("parts"),
            kwargs=model_kwargs(self.spec, ids, rows("attention_mask"), rows("token_type_ids")),
            gamma=e_b + alpha * delta, tangent=delta,
        )

    def endpoint_pass(self, acc: Accumulator, data: dict, todo: list[tuple[int, float]], points_per_chunk: int):
        """No-grad forward at α = 0 / 1 for pairs whose grid lacks those points (F and |activation|)."""
        for i in range(0, len(todo), points_per_chunk):
            part = todo[i : i + points_per_chunk]
            ch = self.chunk(data, np.array([p for p, _ in part]), np.array([a for _, a in part]))
            scores, rec, _ = self.forward(ch.kwargs, ch.gamma, ch.n_streams, grad=False)
            self.record_endpoints(acc, ch, scores, rec)

    def process_chunk(self, acc: Accumulator, data: dict, segments) -> None:
        """Forward, ONE backward of Σ F over the chunk's points (all layers' tensors at once), reduction."""
        quad = self.quad
        rows_pair = np.concatenate([np.full(b - a, p) for p, a, b in segments])
        k_of_row = np.concatenate([np.arange(a, b) for _, a, b in segments])
        seg_of_row = np.concatenate([np.full(b - a, s) for s, (_, a, b) in enumerate(segments)])
        ch = self.chunk(data, rows_pair, quad.alphas[k_of_row])
        scores, rec, tangents = self.forward(ch.kwargs, ch.gamma, ch.n_streams,
                                             ch.tangent if quad.needs_tangents else None)
        if quad.diff is not None:
            tangents = self.spectral_tangents(rec, ch.n_streams)
        grads = self.gradients(scores, rec)
        self.accumulate_conductance(acc, ch, rec, grads, tangents, seg_of_row, k_of_row)
        self.record_endpoints(acc, ch, scores, rec)

    def spectral_tangents(self, rec: dict, n_streams: int) -> dict:
        """ȧ = D a per pair from the nodes' own activations (whole pairs per chunk, nodes in order, stream-major
        rows): {(slot, layer): tensor} like the forward-mode tangents."""
        diff = torch.as_tensor(self.quad.diff, dtype=self.acc_dtype, device=self.device)
        n = diff.shape[0]
        out = {}
        for name in VALUE_SLOTS:
            for i, v in enumerate(rec[name]):
                if v is None:
                    continue
                x = v.detach().to(self.acc_dtype)
                grouped = x.reshape(n_streams, -1, n, *x.shape[1:])  # [S, pairs, nodes, T, D]
                out[(name, i)] = torch.einsum("ij,spj...->spi...", diff, grouped).reshape(x.shape)
        return out

    @staticmethod
    def gradients(scores: torch.Tensor, rec: dict) -> dict:
        """∂ΣF/∂t for every recorded tensor that is a gradient slot of a cut, in ONE ``autograd.grad``."""
        wanted = [(name, i) for name in ("ffn", "heads", "ffn_rs", "heads_rs", "kv")
                  for i, t in enumerate(rec[name]) if t is not None]
        unique: dict[int, torch.Tensor] = {}
        for name, i in wanted:
            unique.setdefault(id(rec[name][i]), rec[name][i])
        grads = dict(zip(unique, torch.autograd.grad(scores.sum(), list(unique.values()), allow_unused=True)))
        out = {}
        for name, i in wanted:
            g = grads[id(rec[name][i])]
            out[(name, i)] = torch.zeros_like(rec[name][i]) if g is None else g
        return out

    # ------------------------------------------------------------------ reductions

    def record_endpoints(self, acc: Accumulator, ch: Chunk, scores: torch.Tensor, rec: dict) -> None:
        """F at α = 0 / 1 points, and Σ |activation| at α = 1 rows (divided by counts in ``acc.finish``)."""
        lay = self.layout
        for value, key in ((0.0, "f_baseline"), (1.0, "f_x")):
            idx = np.flatnonzero(ch.alphas == value)
            if idx.size:
                picked = scores.detach()[torch.as_tensor(idx, device=self.device)]
                acc.arr[key][ch.rows_pair[idx]] = picked.double().cpu().numpy()
        ones = np.flatnonzero(ch.tile(ch.alphas) == 1.0)
        if ones.size == 0:
            return
        sel = torch.as_tensor(ones, device=self.device)
        n = len(ch.slot_pairs)
        slots = ch.tile(ch.slots)[sel]
        weights = torch.ones(len(ones), dtype=self.acc_dtype, device=self.device)
        reducers = {}
        ffn, heads, counts = [], [], []
        for layer in range(lay.n_layers):
            a = rec["ffn"][layer][sel].detach().to(self.acc_dtype).abs()
            parts = ch.row_parts(a, sel)
            key = tuple(parts.shape)
            if key not in reducers:
                reducers[key] = PartReducer.build(parts, slots, weights, n)
            reduce = reducers[key]
            ffn.append(reduce(a))
            h = rec["heads"][layer][sel].detach().to(self.acc_dtype).unflatten(-1, (lay.n_heads, lay.d_head))
            heads.append(reduce(torch.linalg.vector_norm(h, dim=-1)))
            counts.append(reduce(torch.ones(*a.shape[:2], 1, dtype=self.acc_dtype, device=self.device))[..., 0])
        # Pad tokens: not part of the pair, and chunks trim them, so their mean is defined as 0.
        ffn, heads = torch.stack(ffn, dim=2), torch.stack(heads, dim=2)
        ffn[:, PAD], heads[:, PAD] = 0, 0
        acc.add("ffn_absact", ch.slot_pairs, ffn)
        acc.add("heads_absact", ch.slot_pairs, heads)
        acc.absact_count[ch.slot_pairs] += torch.stack(counts, dim=2).cpu().double().numpy()

    def piece(self, value: torch.Tensor, g: torch.Tensor, t: torch.Tensor | None) -> torch.Tensor:
        """Integrand pieces of one tensor: g ⊙ v̇ (node rule) or g_side ⊙ (v_{r+1} − v_r)."""
        g = g.to(self.acc_dtype)
        if self.quad.is_node_rule:
            return g * t.to(self.acc_dtype)
        v = value.detach().to(self.acc_dtype)
        side = self.quad.grad_side
        gs = g[1:] if side == "right" else g[:-1] if side == "left" else 0.5 * (g[1:] + g[:-1])
        return gs * (v[1:] - v[:-1])

    def cut_terms(self, layer: int) -> dict[str, list[tuple[tuple, tuple]]]:
        """Per output key, the (value slot, gradient slot) terms of one layer's cuts
        (see :mod:`irneurons.units.architectures`)."""
        memory = [("kv", m) for m in self.recorder.memory_terms(layer)]
        return {
            "ffn": [(("ffn", layer), ("ffn", layer))],
            "heads": [(("heads", layer), ("heads", layer))],
            "ffn_resid": [(("ffn_rv", layer), ("ffn_rs", layer))] + [(m, m) for m in memory],
            "heads_resid": [(("heads_rv", layer), ("heads_rs", layer))] + [(m, m) for m in memory],
        }

    def accumulate_conductance(self, acc: Accumulator, ch: Chunk, rec, grads, tangents, seg_of_row, k_of_row):
        """Conductance of every unit and residual, reduced to [pairs, parts] on the device, layer by
        layer so only one layer's pieces are alive at a time; per-token values of ``acc.token_units``."""
        lay, dev, quad = self.layout, self.device, self.quad
        n = len(ch.slot_pairs)
        slots = ch.tile(ch.slots)
        if quad.is_node_rule:
            weights = torch.as_tensor(ch.tile(quad.weights[k_of_row]), dtype=self.acc_dtype, device=dev)
            keep = None
        else:
            segs = np.concatenate([seg_of_row + s * (seg_of_row.max() + 1) for s in range(ch.n_streams)])
            keep_np = segs[1:] == segs[:-1]
            weights = torch.ones(len(keep_np), dtype=self.acc_dtype, device=dev)
            keep = None if keep_np.all() else torch.as_tensor(keep_np, device=dev)
            slots = slots[:-1]
        reducers = {}

        def reducer(value):
            parts = ch.row_parts(value)
            if not quad.is_node_rule:
                parts = parts[:-1]
            key = tuple(parts.shape)
            if key not in reducers:
                reducers[key] = PartReducer.build(parts, slots, weights, n, keep=keep)
            return reducers[key]

        out = {"ffn": [], "ffn_resid": [], "heads": [], "heads_resid": []}
        for layer in range(lay.n_layers):
            for key, terms in self.cut_terms(layer).items():
                total = 0
                for (vslot, vi), (gslot, gi) in terms:
                    value = rec[vslot][vi]
                    c = self.piece(value, grads[(gslot, gi)], None if tangents is None else tangents[(vslot, vi)])
                    if key == "heads":
                        c = c.unflatten(-1, (lay.n_heads, lay.d_head)).sum(-1)
                    elif key.endswith("resid"):
                        c = c.sum(-1, keepdim=True)
                    if key in ("ffn", "heads") and acc.token_units is not None:
                        self.keep_tokens(acc, ch, key, layer, c, slots, weights, keep)
                    reduced = reducer(value)(c)
                    total = total + (reduced[..., 0] if key.endswith("resid") else reduced)
                out[key].append(total)
        for key, values in out.items():
            acc.add(key, ch.slot_pairs, torch.stack(values, dim=2))

    def keep_tokens(self, acc: Accumulator, ch: Chunk, block: str, layer: int, c: torch.Tensor, slots, weights, keep):
        """Per-token conductance Σ_rows w_r c_r[t, u] of the kept units u of one layer → [pairs, S, T, k]."""
        columns = acc.token_units.columns[block].get(layer)
        if not columns:
            return
        if c.shape[1] != ch.parts_rows.shape[1]:
            raise ValueError(f"per-token conductance is not defined for decoder units ({block} layer {layer})")
        rows_per_stream = len(ch.rows_pair)
        stream = torch.arange(c.shape[0], device=c.device) // rows_per_stream
        picked = c[..., torch.as_tensor(columns, device=c.device)] * weights[:, None, None]
        target = slots * ch.n_streams + stream  # (pair slot, stream) of each row
        if keep is not None:
            picked, target = picked[keep], target[keep]
        out = torch.zeros(len(ch.slot_pairs) * ch.n_streams, *picked.shape[1:], dtype=picked.dtype, device=c.device)
        out.index_add_(0, target, picked)
        acc.add_tokens(block, ch.slot_pairs, acc.token_units.offset(block, layer),
                       out.unflatten(0, (len(ch.slot_pairs), ch.n_streams)))
