r"""The adapter table: where the units, the residual and the word embeddings of each architecture are.

Every block of a transformer splits into *sub-blocks* (attention, FFN) of the form

    s = P(u) + r          (pre-LN:  r = block stream, s = next stream;  post-LN: s = the LayerNorm's input)

where P is the sub-block's output projection (FFN down-projection, attention output projection), u its input
(the **units**: FFN neurons after the activation, or for gated MLPs the gated product act(gate)·up; head contexts
concatenated head-major) and r the residual stream that bypasses the sub-block. Everything downstream depends on
the input only through s, so {u, r} is a true cut and, with g = ∂F/∂s,

    Cond(u_j) = ∫ ∂F/∂u_j · u̇_j dα,   Cond(r) = ∫ g · ṙ dα,   Σ_j Cond(u_j) + Cond(r) = F(x) − F(x′).

Reading s separately from r (instead of aliasing r at an input) works for post-LN blocks, where r is an input
of a BertOutput-like module, and for pre-LN blocks, where the residual add is inline and r is the block input
(or the stream between the two sub-blocks) with its direct path separated by taking g at s.

A :class:`Cut` names three taps relative to one block: the projection whose input 0 holds u, the tap of r and
the tap of s. A :class:`Stack` is a list of blocks (one per layer) and the cuts of its FFN and attention
sub-blocks; an :class:`Architecture` is its stacks, its word-embedding table and its head modules, and
``ARCHITECTURES`` maps each supported ``config.model_type`` to one. Encoder–decoders (T5) have two stacks; the
decoder's attention units are its cross-attention heads, and because the encoder output also reaches every
later cross-attention (keys/values), a decoder cut adds those "memory" edges to its residual:

    Cond(r_l) = ∫ g_l · ṙ_l dα + Σ_{m > l} ∫ ∂F/∂kv_m · ėnc dα.

Nothing outside this module knows an architecture's module names.
"""

from __future__ import annotations

from irneurons.errors import UnsupportedArchitecture
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class Tap:
    """A tensor read at a module of a block: input ``index`` (or keyword ``name``) with ``at="in"``, or its
    output (the first element of a tuple output) with ``at="out"``."""

    module: str
    at: str = "in"
    index: int = 0
    name: str | None = None


@dataclass(frozen=True)
class Cut:
    """One sub-block s = P(u) + r: ``units`` is the projection P (its input 0 is u), ``residual`` the tap of r,
    ``total`` the tap of s."""

    units: str
    residual: Tap
    total: Tap


@dataclass(frozen=True)
class Stack:
    """Blocks at ``path`` (a ModuleList below the base model) with their two cuts. ``stream`` is ``encoder`` or
    ``decoder`` (decoder tokens are the decoder's own positions, not input tokens). ``memory``: the tap, per
    block, where the encoder output enters as cross-attention keys/values (decoders of encoder–decoders)."""

    path: str
    ffn: Cut
    heads: Cut
    stream: str = "encoder"
    memory: Tap | None = None
    prefix: str = ""


@dataclass(frozen=True)
class Architecture:
    """How one family is laid out (paths relative to ``model.base_model``)."""

    family: str
    stacks: tuple[Stack, ...]
    embedding: str
    #: modules after the encoder run outside autocast (F stays in full precision)
    head_modules: tuple[str, ...] = ()
    #: the embedding table is also used by a decoder: only its first lookup of a forward is the input's
    first_lookup_only: bool = False


_POST_LN = Stack(
    path="encoder.layer",
    ffn=Cut("output.dense", Tap("output", index=1, name="input_tensor"), Tap("output.LayerNorm")),
    heads=Cut("attention.output.dense", Tap("attention.output", index=1, name="input_tensor"),
              Tap("attention.output.LayerNorm")),
)
_CE_HEADS = ("pooler", "pre_classifier", "classifier", "head")

BERT_LIKE = Architecture("bert-like (post-LN)", (_POST_LN,), "embeddings.word_embeddings", _CE_HEADS)

DISTILBERT = Architecture(
    "distilbert (post-LN)",
    (Stack(
        path="transformer.layer",
        ffn=Cut("ffn.lin2", Tap("ffn", name="input"), Tap("output_layer_norm")),
        heads=Cut("attention.out_lin", Tap("", name="hidden_states"), Tap("sa_layer_norm")),
    ),),
    "embeddings.word_embeddings", _CE_HEADS,
)

def _pre_ln_stack(ffn_proj: str, attn_proj: str, mid_norm: str) -> Stack:
    """A pre-LN block at ``layers``: attention r = block input, s = the stream entering ``mid_norm`` (the FFN's
    norm); FFN r = that stream, s = the block output."""
    return Stack(
        path="layers",
        ffn=Cut(ffn_proj, Tap(mid_norm), Tap("", at="out")),
        heads=Cut(attn_proj, Tap("", name="hidden_states"), Tap(mid_norm)),
    )


MODERNBERT = Architecture("modernbert (pre-LN, gated GLU MLP)", (_pre_ln_stack("mlp.Wo", "attn.Wo", "mlp_norm"),),
                          "embeddings.tok_embeddings", _CE_HEADS)

PRE_LN_DECODER = Architecture(
    "decoder LLM (pre-LN, gated MLP)",
    (_pre_ln_stack("mlp.down_proj", "self_attn.o_proj", "post_attention_layernorm"),),
    "embed_tokens", ("lm_head",),
)

T5 = Architecture(
    "t5 encoder-decoder (pre-LN)",
    (
        Stack(
            path="encoder.block",
            ffn=Cut("layer.1.DenseReluDense.wo", Tap("layer.1", name="hidden_states"), Tap("layer.1", at="out")),
            heads=Cut("layer.0.SelfAttention.o", Tap("layer.0", name="hidden_states"), Tap("layer.0", at="out")),
            prefix="enc",
        ),
        Stack(
            path="decoder.block",
            ffn=Cut("layer.2.DenseReluDense.wo", Tap("layer.2", name="hidden_states"), Tap("layer.2", at="out")),
            heads=Cut("layer.1.EncDecAttention.o", Tap("layer.1", name="hidden_states"), Tap("layer.1", at="out")),
            stream="decoder",
            memory=Tap("layer.1", index=1, name="key_value_states"),
            prefix="dec",
        ),
    ),
    "encoder.embed_tokens", ("lm_head",), first_lookup_only=True,
)

#: ``config.model_type`` → architecture. Each entry is covered by the per-architecture tests.
ARCHITECTURES: dict[str, Architecture] = {
    "bert": BERT_LIKE,
    "roberta": BERT_LIKE,
    "xlm-roberta": BERT_LIKE,
    "electra": BERT_LIKE,
    "deberta-v2": BERT_LIKE,
    "distilbert": DISTILBERT,
    "modernbert": MODERNBERT,
    "t5": T5,
    "llama": PRE_LN_DECODER,
    "qwen2": PRE_LN_DECODER,
    "qwen3": PRE_LN_DECODER,
    "mistral": PRE_LN_DECODER,
}


def supported_types() -> list[str]:
    return sorted(ARCHITECTURES)


def check_model_type(model_type: str) -> Architecture:
    """The architecture of ``model_type``; :class:`UnsupportedArchitecture` naming it and the supported list."""
    arch = ARCHITECTURES.get(str(model_type))
    if arch is None:
        raise UnsupportedArchitecture(
            f"model type {model_type!r} is not supported (no unit adapter); supported: {', '.join(supported_types())}"
        )
    return arch


def model_type(model: nn.Module) -> str:
    config = getattr(model, "config", None)
    return str(getattr(config, "model_type", type(model).__name__))


def architecture(model: nn.Module) -> Architecture:
    return check_model_type(model_type(model))


def base_model(model: nn.Module) -> nn.Module:
    return getattr(model, "base_model", model)


def submodule(root: nn.Module, path: str, what: str, model: nn.Module) -> nn.Module:
    """``root.get_submodule(path)`` with an error naming the model type and what was looked for."""
    if not path:
        return root
    try:
        return root.get_submodule(path)
    except AttributeError:
        raise ValueError(f"model type {model_type(model)!r}: no module {path!r} ({what})") from None


def blocks(model: nn.Module, stack: Stack) -> list[nn.Module]:
    layers = submodule(base_model(model), stack.path, "block list", model)
    if len(layers) == 0:
        raise ValueError(f"model type {model_type(model)!r}: {stack.path} is empty")
    return list(layers)
