"""Which units exist in a BERT-family cross-encoder, and how to hook them.

Units are the *inputs* of each block's output sub-module, because there the block splits into
units + residual (a true cut of the network):

- FFN neurons: input 0 of ``encoder.layer[i].output`` (``BertOutput``): the post-GELU intermediate
  activations, shape [B, T, d_ff]. Its input 1 (``input_tensor``, the attention output) is the residual.
- Attention heads: input 0 of ``encoder.layer[i].attention.output`` (``BertSelfOutput``): the
  concatenated head contexts, shape [B, T, heads * d_head]; head h is the slice
  ``[h * d_head, (h + 1) * d_head)``. Its input 1 (the layer input) is the residual.

Both modules compute ``LayerNorm(dense(units) + residual)``, and everything after them depends on
the input only through (units, residual), so for each block
Σ Cond(units) + Σ Cond(residual) = F(x) − F(x').

BERT (MiniLM is a BERT), ELECTRA and RoBERTa share this layout under ``model.base_model``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class UnitLayout:
    """Shape of the unit space of an encoder."""

    n_layers: int
    d_ff: int
    n_heads: int
    d_head: int
    hidden: int


def _model_type(model: nn.Module) -> str:
    config = getattr(model, "config", None)
    return getattr(config, "model_type", type(model).__name__)


def encoder_layers(model: nn.Module) -> list[nn.Module]:
    """The encoder blocks ``model.base_model.encoder.layer``; ValueError naming what is missing."""
    base = getattr(model, "base_model", model)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if layers is None or len(layers) == 0:
        raise ValueError(
            f"model type {_model_type(model)!r} has no base_model.encoder.layer list; "
            "NIG units are defined for BERT-family encoders (BERT/MiniLM, ELECTRA, RoBERTa)"
        )
    return list(layers)


def _check_output_module(module: nn.Module | None, what: str, model: nn.Module, i: int) -> nn.Module:
    """Require a BertOutput-like module: forward(hidden_states, input_tensor), a ``dense`` Linear."""
    if module is None or not isinstance(getattr(module, "dense", None), nn.Linear):
        raise ValueError(
            f"model type {_model_type(model)!r} has no encoder.layer[{i}].{what} "
            f"({'BertOutput' if what == 'output' else 'BertSelfOutput'}-like module with a dense Linear)"
        )
    params = list(inspect.signature(module.forward).parameters)
    if params[:2] != ["hidden_states", "input_tensor"]:
        raise ValueError(
            f"model type {_model_type(model)!r}: encoder.layer[{i}].{what}.forward takes {params}, "
            "expected (hidden_states, input_tensor), so units + residual cannot be hooked"
        )
    return module


def ffn_modules(model: nn.Module) -> list[nn.Module]:
    """Per layer, the module whose input 0 holds the FFN neurons (``BertOutput``)."""
    return [
        _check_output_module(getattr(layer, "output", None), "output", model, i)
        for i, layer in enumerate(encoder_layers(model))
    ]


def head_modules(model: nn.Module) -> list[nn.Module]:
    """Per layer, the module whose input 0 holds the concatenated head contexts (``BertSelfOutput``)."""
    return [
        _check_output_module(
            getattr(getattr(layer, "attention", None), "output", None), "attention.output", model, i
        )
        for i, layer in enumerate(encoder_layers(model))
    ]


def word_embeddings(model: nn.Module) -> nn.Module:
    """The word (token) embedding table, the only thing NIG interpolates."""
    base = getattr(model, "base_model", model)
    emb = getattr(getattr(base, "embeddings", None), "word_embeddings", None)
    if not isinstance(emb, nn.Embedding):
        raise ValueError(f"model type {_model_type(model)!r} has no base_model.embeddings.word_embeddings")
    return emb


def layout(model: nn.Module) -> UnitLayout:
    """Unit layout read from the modules themselves (not the config, which may lie)."""
    ffn, heads = ffn_modules(model), head_modules(model)
    config = model.config
    n_heads = int(config.num_attention_heads)
    hidden = heads[0].dense.in_features
    if hidden % n_heads:
        raise ValueError(f"attention width {hidden} is not divisible by {n_heads} heads")
    return UnitLayout(
        n_layers=len(ffn),
        d_ff=ffn[0].dense.in_features,
        n_heads=n_heads,
        d_head=hidden // n_heads,
        hidden=ffn[0].dense.out_features,
    )


def _split_args(args: tuple, kwargs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    units = args[0] if len(args) > 0 else kwargs["hidden_states"]
    residual = args[1] if len(args) > 1 else kwargs["input_tensor"]
    return units, residual


def _join_args(args: tuple, kwargs: dict, units: torch.Tensor, residual: torch.Tensor):
    args, kwargs = list(args), dict(kwargs)
    if len(args) > 0:
        args[0] = units
    else:
        kwargs["hidden_states"] = units
    if len(args) > 1:
        args[1] = residual
    else:
        kwargs["input_tensor"] = residual
    return tuple(args), kwargs


class UnitRecorder:
    """Context manager: records (units, residual) entering every FFN-output and attention-output module.

    The hook replaces both inputs by fresh aliases (``view_as``). A gradient taken w.r.t. an alias is
    the partial derivative through that module only; without it, the residual's gradient would also
    include the path through the attention / FFN that the same tensor feeds (not a cut).

    After a forward, ``ffn``, ``ffn_res``, ``heads``, ``heads_res`` are lists (one tensor per layer).
    ``tensors()`` returns them flat and raises if any hook did not fire: a silent no-op is an error.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self._ffn_mods = ffn_modules(model)
        self._head_mods = head_modules(model)
        self.n_layers = len(self._ffn_mods)
        self._handles: list = []
        self.reset()

    def reset(self) -> None:
        # In place: the hooks hold references to these lists.
        for name in ("ffn", "ffn_res", "heads", "heads_res"):
            if not hasattr(self, name):
                setattr(self, name, [None] * self.n_layers)
            getattr(self, name)[:] = [None] * self.n_layers

    def _hook(self, units_store: list, res_store: list, i: int):
        def hook(module, args, kwargs):
            units, residual = _split_args(args, kwargs)
            if units_store[i] is not None:
                raise RuntimeError(f"unit module of layer {i} ran twice in one forward")
            units, residual = units.view_as(units), residual.view_as(residual)
            units_store[i], res_store[i] = units, residual
            return _join_args(args, kwargs, units, residual)

        return hook

    def __enter__(self) -> "UnitRecorder":
        for i, (f, h) in enumerate(zip(self._ffn_mods, self._head_mods)):
            self._handles.append(
                f.register_forward_pre_hook(self._hook(self.ffn, self.ffn_res, i), with_kwargs=True)
            )
            self._handles.append(
                h.register_forward_pre_hook(self._hook(self.heads, self.heads_res, i), with_kwargs=True)
            )
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def check_fired(self) -> None:
        missing = [
            f"{name}[{i}]"
            for name in ("ffn", "ffn_res", "heads", "heads_res")
            for i, t in enumerate(getattr(self, name))
            if t is None
        ]
        if missing:
            raise RuntimeError(
                f"unit hooks did not fire for {missing[:6]}{'...' if len(missing) > 6 else ''}: "
                "the model's forward bypassed encoder.layer[i].output / .attention.output"
            )

    def tensors(self) -> list[torch.Tensor]:
        """Flat list [ffn_0, ffn_res_0, heads_0, heads_res_0, ffn_1, ...]."""
        self.check_fired()
        out = []
        for i in range(self.n_layers):
            out += [self.ffn[i], self.ffn_res[i], self.heads[i], self.heads_res[i]]
        return out


class EmbeddingOverride:
    """Context manager: a forward hook on the word-embedding module replacing its output.

    Set ``.value`` to a tensor of the module's output shape before the forward; ``None`` lets the
    real lookup through. Replacing the *output* of ``word_embeddings`` (rather than passing
    ``inputs_embeds``) keeps every other input of the model exactly as for the real input:
    RoBERTa, for one, derives position ids from ``input_ids`` but not from ``inputs_embeds``.
    """

    def __init__(self, model: nn.Module):
        self.module = word_embeddings(model)
        self.value: torch.Tensor | None = None
        self.fired = False
        self._handle = None

    def _hook(self, module, inputs, output):
        self.fired = True
        if self.value is None:
            return None
        if self.value.shape != output.shape:
            raise RuntimeError(f"embedding override has shape {tuple(self.value.shape)}, expected {tuple(output.shape)}")
        return self.value

    def __enter__(self) -> "EmbeddingOverride":
        self._handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()
        self.value = None
