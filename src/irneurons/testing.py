"""Tiny randomly initialised models of every supported architecture, built offline from ``AutoConfig.for_model``,
with hand-made token ids and parts: for tests, benchmarks and smoke checks (no download).

``tiny(model_type, kind)`` returns a :class:`Tiny`: the model (eval, eager attention), its ranker spec, answer ids
(prompted kinds) and a batch of two pairs in the [N, S, T] layout of :class:`irneurons.rankers.pairs.Encoded`.
:func:`build` is the one model factory of tests and benchmarks (sizes, vocabulary, positions, dtype, init);
:func:`random_batch` makes longer random batches in the same layout. The auto class of each kind comes from
:data:`irneurons.rankers.kinds.KINDS`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from irneurons.rankers import parts as P
from irneurons.rankers.kinds import KINDS, RankerSpec, attach

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
        """Parts, spec, answer ids and pad id of this batch (``pad_id`` / ``answers`` are what
        :meth:`irneurons.attribution.conductance.NeuronConductance.attribute_encoded` takes)."""
        return dict(parts=self.parts, spec=self.spec, answers=self.answers, pad_id=self.pad_id)


def _encoder(hidden, layers, heads, d_ff, positions):
    return dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=d_ff,
                max_position_embeddings=positions)


#: model_type → its config's size keywords (hidden, layers, heads, d_ff, max positions); others: :func:`_encoder`
_SIZES = {
    "distilbert": lambda hidden, layers, heads, d_ff, positions: dict(
        dim=hidden, n_layers=layers, n_heads=heads, hidden_dim=d_ff, max_position_embeddings=positions,
        pad_token_id=0),
    "t5": lambda hidden, layers, heads, d_ff, positions: dict(
        d_model=hidden, d_kv=hidden // heads, num_heads=heads, d_ff=d_ff, num_layers=layers,
        num_decoder_layers=layers, feed_forward_proj="gated-gelu", decoder_start_token_id=0, pad_token_id=0,
        eos_token_id=1),
}
_ROBERTA = dict(pad_token_id=1, bos_token_id=0, eos_token_id=2)
_DECODER = dict(pad_token_id=0, bos_token_id=2, eos_token_id=3, tie_word_embeddings=False)
#: model_type → keywords set after the sizes (functions of hidden, heads); others: ``pad_token_id=0``
_SPECIAL = {
    "roberta": lambda hidden, heads: _ROBERTA,
    "xlm-roberta": lambda hidden, heads: _ROBERTA,
    "electra": lambda hidden, heads: dict(embedding_size=8),
    "deberta-v2": lambda hidden, heads: dict(  # DeBERTa-v3 style: disentangled relative attention
        relative_attention=True, pos_att_type=["p2c", "c2p"], position_buckets=16, norm_rel_ebd="layer_norm",
        share_att_key=True, position_biased_input=False, max_relative_positions=-1, pad_token_id=0),
    "modernbert": lambda hidden, heads: dict(pad_token_id=0, bos_token_id=2, eos_token_id=3, cls_token_id=2,
                                             sep_token_id=3, global_attn_every_n_layers=2, local_attention=8),
    "qwen2": lambda hidden, heads: dict(num_key_value_heads=heads // 2, **_DECODER),
    "qwen3": lambda hidden, heads: dict(num_key_value_heads=heads // 2, head_dim=hidden // heads, **_DECODER),
    "llama": lambda hidden, heads: dict(num_key_value_heads=heads // 2, **_DECODER),
    "mistral": lambda hidden, heads: dict(num_key_value_heads=heads // 2, **_DECODER),
}


def config(model_type: str, layers: int = 2, hidden: int = 16, heads: int = 4, d_ff: int = 24,
           max_positions: int = 64, **extra):
    """A tiny config of ``model_type`` (vocabulary :data:`VOCAB` unless ``vocab_size`` is given, room for
    ``max_positions`` tokens, eager attention); ``extra``: further config keywords."""
    from transformers import AutoConfig

    common = {"vocab_size": VOCAB, "num_labels": 1, **extra}  # ``extra`` may override the vocabulary
    if model_type in _SIZES:
        kw = {**_SIZES[model_type](hidden, layers, heads, d_ff, max_positions), **common}
    else:
        kw = {**_encoder(hidden, layers, heads, d_ff, max_positions), **common}
        kw.update(_SPECIAL.get(model_type, lambda hidden, heads: dict(pad_token_id=0))(hidden, heads))
    cfg = AutoConfig.for_model(model_type, **kw)
    cfg._attn_implementation = "eager"
    return cfg


def build(model_type: str, kind: str | None = None, seed: int = 0, dtype=torch.float64, init: float | None = 0.3,
          **cfg_kw):
    """A tiny random model of ``model_type`` for ``kind`` (default: its first :data:`TINY_KINDS` kind), the one
    factory of tests and benchmarks.

    Args:
        model_type: a key of :data:`TINY_KINDS`.
        kind: a ranker kind (:data:`irneurons.rankers.kinds.KINDS`).
        seed: seeds torch before the weights are drawn.
        dtype: the weights' dtype.
        init: the weights' standard deviation (``initializer_range``); the word embeddings are redrawn with it so
            that no pad row is all zeros. None: transformers' own initialisation, untouched.
        cfg_kw: :func:`config` keywords (layers, hidden, heads, d_ff, max_positions, vocab_size, ...).

    Returns:
        The model (eval mode) with its :class:`irneurons.rankers.kinds.RankerSpec` attached (prompted kinds answer
        ``yes`` / ``no``, token ids :data:`YES` / :data:`NO` in the tiny vocabulary).

    Examples:
        >>> model = build("bert", "bi_encoder", dtype=torch.float32, vocab_size=30522, max_positions=512)
        >>> model.irneurons_spec.n_streams
        2
    """
    kind = KINDS[kind or TINY_KINDS[model_type][0]]
    cfg = config(model_type, **({} if init is None else {"initializer_range": init}), **cfg_kw)
    torch.manual_seed(seed)
    model = kind.model_class().from_config(cfg).to(dtype).eval()
    if init is not None:
        with torch.no_grad():
            # ``padding_idx`` rows start at exactly 0: a pad baseline would then start the path at a norm's
            # singularity (LayerNorm / RMSNorm of ~0, where no position embedding is added), a sharp kink that no
            # quadrature resolves in few nodes. Trained models' pad rows differ; the tiny ones get random rows.
            from irneurons.units.hooks import word_embeddings

            weight = word_embeddings(model).weight
            weight.copy_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(seed),
                                     dtype=torch.float64).to(weight.dtype) * init)
            if hasattr(model, "pre_classifier"):  # DistilBERT's head: keep its inline ReLU linear (F smooth)
                model.pre_classifier.bias += 5.0
    spec = RankerSpec(kind=kind.name, answers=("yes", "no") if kind.prompted else None)
    return attach(model, spec)


def answers(kind: str) -> tuple[int, int] | None:
    """Answer token ids of a tiny model of ``kind`` (:data:`YES`, :data:`NO` for prompted kinds, else None)."""
    return (YES, NO) if KINDS[kind].prompted else None


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


def _layout(model_type: str, kind: str, pairs):
    """(ids [N,S,T], parts [N,S,T], pad id) of ``pairs`` [(prefix, query, middle, passage, suffix)] of token ids
    in the layout of ``kind`` (the prompt segments are used by prompted kinds only)."""
    info = KINDS[kind]
    if info.prompted:
        head, tail = [2] if info.bos else [], [1] if info.eos else []
        rows = []
        for prefix, q, middle, p, suffix in pairs:
            ids = head + prefix + q + middle + p + suffix + tail
            part = ([P.CLS] * (len(head) + len(prefix)) + [P.QUERY] * len(q) + [P.SEP1] * len(middle)
                    + [P.PASSAGE] * len(p) + [P.SEP2] * (len(suffix) + len(tail)))
            rows.append((ids, part))
        ids, parts = _pad(rows, 0)
        return ids[:, None], parts[:, None], 0
    if info.streams == 2:
        q_ids, q_parts = _pad([([2] + q + [3], [P.CLS] + [P.QUERY] * len(q) + [P.SEP1]) for _, q, _, _, _ in pairs], 0)
        p_ids, p_parts = _pad([([2] + p + [3], [P.SEP2] + [P.PASSAGE] * len(p) + [P.SEP2])
                               for _, _, _, p, _ in pairs], 0)
        width = max(q_ids.shape[1], p_ids.shape[1])

        def widen(t, v):
            return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=v)

        return (torch.stack([widen(q_ids, 0), widen(p_ids, 0)], 1),
                torch.stack([widen(q_parts, P.PAD), widen(p_parts, P.PAD)], 1), 0)
    cls, sep, pad, double = (0, 2, 1, True) if model_type in ("roberta", "xlm-roberta") else (2, 3, 0, False)
    rows = []
    for _, q, _, p, _ in pairs:
        seps = [sep, sep] if double else [sep]
        ids = [cls] + q + seps + p + [sep]
        part = [P.CLS] + [P.QUERY] * len(q) + [P.SEP1] * len(seps) + [P.PASSAGE] * len(p) + [P.SEP2]
        rows.append((ids, part))
    ids, parts = _pad(rows, pad)
    return ids[:, None], parts[:, None], pad


def token_types(model_type: str, ids: torch.Tensor) -> torch.Tensor | None:
    """Token type ids (zeros, [N, S, T]) for the model types whose tiny batches carry them, else None."""
    return torch.zeros_like(ids) if model_type in ("bert", "electra") else None


def batch(model_type: str, kind: str):
    """(ids [N,S,T], parts [N,S,T], pad id) of two pairs, one shorter than the other (so one is padded)."""
    return _layout(model_type, kind, [([5, 6], q, [7], p, [8, 9]) for q, p in zip(QUERIES, PASSAGES)])


def random_batch(model_type: str, kind: str, n_pairs: int, length: int, q_len: int, vocab: int, seed: int = 0):
    """(ids, mask, token types | None, parts, pad id) [N, S, T] of ``n_pairs`` pairs of ``length`` tokens in all
    (bi-encoders: both streams together) with ``q_len`` query tokens, content ids random in [5, ``vocab``); the
    layout of :func:`batch` (prompted kinds: 8 prefix, 4 middle and 6 suffix tokens, random too)."""
    g = torch.Generator().manual_seed(seed)

    def rand(n):
        return torch.randint(5, vocab, (n,), generator=g).tolist()

    info = KINDS[kind]
    if info.prompted:
        n_pre, n_mid, n_suf = 8, 4, 6
        p_len = length - int(info.bos) - int(info.eos) - n_pre - n_mid - n_suf - q_len
        pairs = [(rand(n_pre), rand(q_len), rand(n_mid), rand(p_len), rand(n_suf)) for _ in range(n_pairs)]
    elif info.streams == 2:
        p_len = length - q_len - 4
        qs = [rand(q_len) for _ in range(n_pairs)]
        pairs = [([], q, [], rand(p_len), []) for q in qs]
    else:
        p_len = length - 2 - (2 if model_type in ("roberta", "xlm-roberta") else 1) - q_len
        pairs = [([], rand(q_len), [], rand(p_len), []) for _ in range(n_pairs)]
    ids, parts, pad = _layout(model_type, kind, pairs)
    return ids, (parts != P.PAD).long(), token_types(model_type, ids), parts, pad


def tiny(model_type: str, kind: str | None = None, seed: int = 0, dtype=torch.float64, **kw) -> Tiny:
    """A :class:`Tiny` of ``model_type`` for ``kind``: :func:`build`'s model (``kw``: its keywords) and
    :func:`batch`'s two pairs."""
    kind = kind or TINY_KINDS[model_type][0]
    model = build(model_type, kind, seed, dtype, **kw)
    ids, parts, pad = batch(model_type, kind)
    mask = (parts != P.PAD).long()
    return Tiny(model, model.irneurons_spec, ids, mask, token_types(model_type, ids), parts, pad, answers(kind))


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
