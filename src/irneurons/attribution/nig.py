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
part's tokens. Units are the inputs of each block's output sub-module (:mod:`irneurons.units.hooks`), so
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

Modules: token parts and baselines :mod:`irneurons.rankers.parts`; rules and chunk planning
:mod:`irneurons.attribution.quadrature`; the forward-mode linear trick :mod:`irneurons.attribution.linear_jvp`; the passes
:mod:`irneurons.attribution.engine`; reductions :mod:`irneurons.attribution.accumulate`; completeness :mod:`irneurons.attribution.completeness`;
shard I/O :mod:`irneurons.attribution.shards`; the class API :mod:`irneurons.attribution.conductance`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from irneurons.attribution.accumulate import Accumulator, TokenUnits, raise_nonfinite
from irneurons.attribution.engine import Engine, attribution_mode
from irneurons.rankers.loading import resolve_device
from irneurons.numerics import resolve_bf16
from irneurons.rankers.parts import N_PARTS, baseline_ids, token_parts
from irneurons.attribution.quadrature import default_budget, plan_chunks, quadrature
from irneurons.rankers.kinds import RankerSpec, spec_of
from irneurons.rankers.pairs import answer_ids, encode_pairs
from irneurons.rankers.pairs import pad_id as rankers_pad_id

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
    "ffn_tokens": "[N,S,T,k] per-token conductance of the FFN units of ``token_units`` (only when asked)",
    "heads_tokens": "[N,S,T,k] per-token conductance of the heads of ``token_units`` (only when asked)",
    "ffn_token_units": "[k,2] (layer, unit) of the ffn_tokens columns",
    "heads_token_units": "[k,2] (layer, head) of the heads_tokens columns",
}



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
    token_units: Sequence[tuple[str, int, int]] | None = None,
) -> dict[str, np.ndarray]:
    """NIG of every FFN neuron and head for tokenized pairs.

    ``input_ids`` etc. are [N, T] (one stream) or [N, S, T] (S streams; bi-encoders: query, passage).
    ``parts`` ([N, (S,) T] part slots) default: read ``[CLS] q [SEP] p [SEP]`` from ``cls_id`` / ``sep_id``.
    ``spec``: the model kind (default: the spec attached to the model, see :mod:`irneurons.rankers.kinds`;
    ``target`` applies to cross-encoders); ``answers``: answer token ids of prompted kinds.
    ``budget``: max rows × tokens per forward (rows = pairs × path points × streams; default
    :func:`default_budget`); a pair's points may be split over forwards. Moves ``model`` to ``device``
    (default: cuda if available). Returns the arrays of :data:`RESULT_DOC`, stacked over pairs. Raises
    :class:`irneurons.attribution.accumulate.NonFiniteAttributionError` naming the pair if an attribution is NaN/inf.

    ``token_units``: (block, layer, unit) triples (block ``ffn`` | ``heads``) whose per-token conductance is
    also returned, as ``<block>_tokens`` [N, S, T, k] (Σ over tokens and streams = the part sums) with
    ``<block>_token_units`` [k, 2] (layer, unit), layer-sorted. Meant for a few selected units: the host
    array grows with k × tokens.
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
    with attribution_mode(model):
        eng = Engine(model, spec, quad, bf16, fast_jvp, answers)
        base = torch.stack([baseline_ids(ids[:, s], parts[:, s], pad_id, baseline) for s in range(n_streams)], 1)
        data = {
            "input_ids": ids, "attention_mask": am, "token_type_ids": None if tt is None else tt.cpu(),
            "baseline_ids": base, "parts": parts, "lengths": am.sum(-1).amax(-1).numpy(),
        }
        n_tokens = np.stack([(parts == p).sum((1, 2)).numpy() for p in range(N_PARTS)], axis=1)
        kept = None if token_units is None else TokenUnits.from_units(token_units)
        acc = Accumulator(n_pairs, eng.layout, n_tokens, (n_streams, width), kept)
        points_per_chunk = max((budget or default_budget(dev)) // (width * n_streams), 1)
        chunks = plan_chunks(n_pairs, n_points, points_per_chunk, overlap=not quad.is_node_rule,
                             whole_pairs=quad.diff is not None)
        missing = [(p, a) for a in (0.0, 1.0) if not np.any(quad.alphas == a) for p in range(n_pairs)]
        with eng.recorder, eng.embedding:
            eng.endpoint_pass(acc, data, missing, points_per_chunk)
            bar = tqdm(total=n_pairs, desc=f"NIG {estimator}x{steps}", unit="pair", disable=not progress)
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
    token_units: Sequence[tuple[str, int, int]] | None = None,
) -> dict[str, np.ndarray]:
    """NIG for (query, passage) pairs: tokenizes as the ranker does (:func:`irneurons.rankers.encoding.encode_pairs`,
    kind from ``spec`` or the model's attached spec), then :func:`attribute_ids`.

    Pairs are padded to the longest pair (≤ ``max_length``); queries over their budget are cut first
    (:func:`irneurons.rankers.loading.truncate_queries`, ``max_query_share`` None = the tokenizer's policy), then passages.
    """
    if len(queries) != len(passages):
        raise ValueError(f"{len(queries)} queries but {len(passages)} passages")
    spec = spec or spec_of(model, target)
    enc = encode_pairs(spec, tokenizer, queries, passages, max_length, max_query_share)
    answers = answer_ids(spec, tokenizer) if spec.answers else None
    return attribute_ids(
        model, enc.input_ids, enc.attention_mask, enc.token_type_ids, parts=enc.parts, spec=spec, answers=answers,
        pad_id=rankers_pad_id(tokenizer), pair_ids=pair_ids, baseline=baseline, target=target, estimator=estimator,
        steps=steps, budget=budget, device=device, bf16=bf16, progress=progress, token_units=token_units,
    )


# --------------------------------------------------------------------------- completeness check
