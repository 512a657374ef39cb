"""Tiny randomly initialised models of every supported architecture, built offline from ``AutoConfig.for_model``,
with hand-made token ids and parts: for tests, benchmarks and smoke checks (no download).

``tiny(model_type, kind)`` returns a :class:`Tiny`: the model (eval, eager attention), its ranker spec, answer ids
(prompted kinds) and a batch of two pairs in the [N, S, T] layout of :class:`irneurons.rankers.encoding.Encoded`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from irneurons.rankers import parts as P
from irneurons.rankers.kinds import RankerSpec, attach

VOCAB = 40
#: model_type → the kinds its tiny model is built for (first: the default kind)
TINY_KINDS = {
    "bert": ("cross_encoder", "bi_encoder"),
    "roberta": ("cross_encoder", "bi_encoder"),
    "xlm-roberta": ("cross_encoder",),
    "electra": ("cross_encoder",),
    "distilbert": ("cross_encoder", "bi_encoder"),
    "deberta-v2": ("cross_encoder",),
    "modernbert": ("cross_encoder", "bi_encoder"),
    "t5": ("t5",),
    "qwen2": ("causal_lm",),
    "qwen3": ("causal_lm",),
    "llama": ("causal_lm",),
    "mistral": ("causal_lm",),
}
YES, NO = 30, 31  # answer token ids of the tiny prompted models


@dataclass
class Tiny:
    model: torch.nn.Module
    spec: RankerSpec
    input_ids: torch.Tensor  # [N, S, T]
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor | None
    parts: torch.Tensor
    pad_id: int
    answers: tuple[int, int] | None

    def kwargs(self) -> dict:
        """Arguments of :func:`irneurons.attribution.nig.attribute_ids` for this batch."""
        return dict(parts=self.parts, spec=self.spec, answers=self.answers, pad_id=self.pad_id)


def config(model_type: str, layers: int = 2, hidden: int = 16, heads: int = 4, d_ff: int = 24, **extra):
    """A tiny config of ``model_type`` (vocabulary :data:`VOCAB`, eager attention)."""
    from transformers import AutoConfig

    common = {"vocab_size": VOCAB, "num_labels": 1, **extra}  # ``extra`` may override the vocabulary
    if model_type == "distilbert":
        cfg = AutoConfig.for_model(model_type, dim=hidden, n_layers=layers, n_heads=heads, hidden_dim=d_ff,
                                   max_position_embeddings=64, pad_token_id=0, **common)
    elif model_type == "t5":
        cfg = AutoConfig.for_model(model_type, d_model=hidden, d_kv=hidden // heads, num_heads=heads, d_ff=d_ff,
                                   num_layers=layers, num_decoder_layers=layers, feed_forward_proj="gated-gelu",
                                   decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, **common)
    else:
        kw = dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=d_ff,
                  max_position_embeddings=64, **common)
        if model_type in ("roberta", "xlm-roberta"):
            kw.update(pad_token_id=1, bos_token_id=0, eos_token_id=2)
        elif model_type == "electra":
            kw.update(embedding_size=8)
        elif model_type == "deberta-v2":  # DeBERTa-v3 style: disentangled relative attention
            kw.update(relative_attention=True, pos_att_type=["p2c", "c2p"], position_buckets=16,
                      norm_rel_ebd="layer_norm", share_att_key=True, position_biased_input=False,
                      max_relative_positions=-1, pad_token_id=0)
        elif model_type == "modernbert":
            kw.update(pad_token_id=0, bos_token_id=2, eos_token_id=3, cls_token_id=2, sep_token_id=3,
                      global_attn_every_n_layers=2, local_attention=8)
        elif model_type in ("qwen2", "qwen3", "llama", "mistral"):
            kw.update(num_key_value_heads=heads // 2, pad_token_id=0, bos_token_id=2, eos_token_id=3,
                      tie_word_embeddings=False)
            if model_type == "qwen3":
                kw.update(head_dim=hidden // heads)
        else:
            kw.update(pad_token_id=0)
        cfg = AutoConfig.for_model(model_type, **kw)
    cfg._attn_implementation = "eager"
    return cfg


def build(model_type: str, kind: str | None = None, seed: int = 0, dtype=torch.float64, init: float = 0.3, **cfg_kw):
    """A tiny random model of ``model_type`` for ``kind`` (default: its first :data:`TINY_KINDS` kind)."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification

    kind = kind or TINY_KINDS[model_type][0]
    cfg = config(model_type, initializer_range=init, **cfg_kw)
    torch.manual_seed(seed)
    factory = {"cross_encoder": AutoModelForSequenceClassification, "bi_encoder": AutoModel,
               "t5": AutoModelForSeq2SeqLM, "causal_lm": AutoModelForCausalLM}[kind]
    model = factory.from_config(cfg).to(dtype).eval()
    with torch.no_grad():
        # ``padding_idx`` rows start at exactly 0: a pad baseline would then start the path at a norm's
        # singularity (LayerNorm / RMSNorm of ~0, where no position embedding is added), a sharp kink that no
        # quadrature resolves in few nodes. Trained models' pad rows differ; the tiny ones get random rows.
        from irneurons.units.hooks import word_embeddings

        weight = word_embeddings(model).weight
        weight.copy_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
                     .to(weight.dtype) * init)
        if model_type == "distilbert" and kind == "cross_encoder":
            model.pre_classifier.bias += 5.0  # keep the head's inline ReLU linear: F stays smooth along the path
    spec = RankerSpec(kind=kind, answers=("yes", "no") if kind in ("t5", "causal_lm") else None)
    return attach(model, spec)


def _pad(rows, pad):
    width = max(len(r) for r, _ in rows)
    ids = torch.full((len(rows), width), pad)
    parts = torch.full((len(rows), width), P.PAD)
    for i, (r, p) in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        parts[i, : len(p)] = torch.tensor(p)
    return ids, parts


QUERIES = ([10, 11], [12])
PASSAGES = ([20, 21, 22], [23, 24, 25, 26, 27, 28])


def batch(model_type: str, kind: str):
    """(ids [N,S,T], parts [N,S,T], pad id) of two pairs, one shorter than the other (so one is padded)."""
    if kind == "cross_encoder":
        cls, sep, pad, double = (0, 2, 1, True) if model_type in ("roberta", "xlm-roberta") else (2, 3, 0, False)
        if model_type == "modernbert":
            cls, sep = 2, 3
        rows = []
        for q, p in zip(QUERIES, PASSAGES):
            seps = [sep, sep] if double else [sep]
            ids = [cls] + q + seps + p + [sep]
            part = [P.CLS] + [P.QUERY] * len(q) + [P.SEP1] * len(seps) + [P.PASSAGE] * len(p) + [P.SEP2]
            rows.append((ids, part))
        ids, parts = _pad(rows, pad)
        return ids[:, None], parts[:, None], pad
    if kind == "bi_encoder":
        q_ids, q_parts = _pad([([2] + q + [3], [P.CLS] + [P.QUERY] * len(q) + [P.SEP1]) for q in QUERIES], 0)
        p_ids, p_parts = _pad([([2] + p + [3], [P.SEP2] + [P.PASSAGE] * len(p) + [P.SEP2]) for p in PASSAGES], 0)
        width = max(q_ids.shape[1], p_ids.shape[1])

        def widen(t, v):
            return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=v)

        return (torch.stack([widen(q_ids, 0), widen(p_ids, 0)], 1),
                torch.stack([widen(q_parts, P.PAD), widen(p_parts, P.PAD)], 1), 0)
    prefix, middle, suffix = [5, 6], [7], [8, 9]
    head = [2] if kind == "causal_lm" else []
    tail = [1] if kind == "t5" else []
    rows = []
    for q, p in zip(QUERIES, PASSAGES):
        ids = head + prefix + q + middle + p + suffix + tail
        part = ([P.CLS] * (len(head) + len(prefix)) + [P.QUERY] * len(q) + [P.SEP1] * len(middle)
                + [P.PASSAGE] * len(p) + [P.SEP2] * (len(suffix) + len(tail)))
        rows.append((ids, part))
    ids, parts = _pad(rows, 0)
    return ids[:, None], parts[:, None], 0


def tiny(model_type: str, kind: str | None = None, seed: int = 0, dtype=torch.float64, **kw) -> Tiny:
    kind = kind or TINY_KINDS[model_type][0]
    model = build(model_type, kind, seed, dtype, **kw)
    ids, parts, pad = batch(model_type, kind)
    mask = (parts != P.PAD).long()
    tt = torch.zeros_like(ids) if model_type in ("bert", "electra") else None
    return Tiny(model, model.irneurons_spec, ids, mask, tt, parts, pad,
                (YES, NO) if kind in ("t5", "causal_lm") else None)


def _rms_forward(module):
    eps = getattr(module, "variance_epsilon", getattr(module, "eps", 1e-6))

    def forward(hidden_states):
        x = hidden_states * torch.rsqrt(hidden_states.pow(2).mean(-1, keepdim=True) + eps)
        return module.weight * x

    return forward


@contextlib.contextmanager
def float64_faithful(model):
    """Inside: the model computes in its own dtype end to end. transformers runs RMSNorm variances and eager
    attention softmaxes in float32 (for fp16 stability), which in a float64 model adds float32 rounding
    (~1e-7 relative) along the path and caps every float64 oracle there. Same maths, no upcasts."""
    patched = [m for m in model.modules() if type(m).__name__.endswith(("RMSNorm", "T5LayerNorm"))]
    for m in patched:
        m.forward = _rms_forward(m)
    softmax = torch.nn.functional.softmax

    def faithful_softmax(input, dim=None, _stacklevel=3, dtype=None):
        if dtype == torch.float32 and input.dtype == torch.float64:
            dtype = None
        return softmax(input, dim=dim, _stacklevel=_stacklevel, dtype=dtype)

    torch.nn.functional.softmax = faithful_softmax
    from transformers.models.modernbert import modeling_modernbert as mb

    rotary = mb.apply_rotary_pos_emb

    def faithful_rotary(q, k, cos, sin, unsqueeze_dim=1):  # ModernBERT rotates q, k in float32
        cos, sin = cos.unsqueeze(unsqueeze_dim).to(q.dtype), sin.unsqueeze(unsqueeze_dim).to(q.dtype)
        return q * cos + mb.rotate_half(q) * sin, k * cos + mb.rotate_half(k) * sin

    mb.apply_rotary_pos_emb = faithful_rotary
    try:
        yield model
    finally:
        torch.nn.functional.softmax = softmax
        mb.apply_rotary_pos_emb = rotary
        for m in patched:
            m.__dict__.pop("forward", None)
