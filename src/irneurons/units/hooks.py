"""Units of a re-ranker and how to hook them, for every architecture of :mod:`irneurons.units.architectures`.

Units are the *inputs* of each sub-block's output projection (FFN down-projection; attention output
projection, heads concatenated), so that per sub-block units + residual form a true cut (see
:mod:`irneurons.units.architectures` for the maths and the per-architecture taps). Layers are numbered over all
stacks of a model (T5: encoder blocks first, then decoder blocks).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from irneurons.units import architectures as A


@dataclass(frozen=True)
class UnitLayout:
    """Shape of the unit space of a model."""

    n_layers: int
    d_ff: int
    n_heads: int
    d_head: int
    hidden: int


@dataclass(frozen=True)
class _Block:
    index: int
    module: nn.Module
    stack: A.Stack


def _blocks(model: nn.Module) -> list[_Block]:
    arch = A.architecture(model)
    out = []
    for stack in arch.stacks:
        for module in A.blocks(model, stack):
            out.append(_Block(len(out), module, stack))
    return out


def encoder_layers(model: nn.Module) -> list[nn.Module]:
    """All blocks of the model, over its stacks (T5: encoder then decoder)."""
    return [b.module for b in _blocks(model)]


def layer_streams(model: nn.Module) -> list[str]:
    """Per layer: ``encoder`` (its tokens are the input's) or ``decoder`` (its own positions)."""
    return [b.stack.stream for b in _blocks(model)]


def _linear(block: _Block, path: str, model: nn.Module) -> nn.Linear:
    module = A.submodule(block.module, path, f"projection of layer {block.index}", model)
    if not isinstance(module, nn.Linear):
        raise ValueError(f"model type {A.model_type(model)!r}: {path} of layer {block.index} is "
                         f"{type(module).__name__}, expected a Linear")
    return module


def ffn_modules(model: nn.Module) -> list[nn.Linear]:
    """Per layer, the FFN down-projection: its input 0 holds the FFN neurons."""
    return [_linear(b, b.stack.ffn.units, model) for b in _blocks(model)]


def head_modules(model: nn.Module) -> list[nn.Linear]:
    """Per layer, the attention output projection: its input 0 holds the concatenated head contexts."""
    return [_linear(b, b.stack.heads.units, model) for b in _blocks(model)]


def word_embeddings(model: nn.Module) -> nn.Embedding:
    """The word (token) embedding table, the only thing NIG interpolates."""
    emb = A.submodule(A.base_model(model), A.architecture(model).embedding, "word embeddings", model)
    if not isinstance(emb, nn.Embedding):
        raise ValueError(f"model type {A.model_type(model)!r}: word embeddings are not an nn.Embedding")
    return emb


def _n_heads(config) -> int:
    for key in ("num_attention_heads", "n_heads", "num_heads"):
        if getattr(config, key, None):
            return int(getattr(config, key))
    raise ValueError(f"model type {config.model_type!r}: config names no head count")


def layout(model: nn.Module) -> UnitLayout:
    """Unit layout read from the modules themselves (not the config, which may lie)."""
    ffn, heads = ffn_modules(model), head_modules(model)
    n_heads = _n_heads(model.config)
    width = heads[0].in_features
    if width % n_heads:
        raise ValueError(f"attention width {width} is not divisible by {n_heads} heads")
    if len({m.in_features for m in ffn}) != 1 or len({m.in_features for m in heads}) != 1:
        raise ValueError(f"model type {A.model_type(model)!r}: layers differ in width")
    return UnitLayout(n_layers=len(ffn), d_ff=ffn[0].in_features, n_heads=n_heads, d_head=width // n_heads,
                      hidden=ffn[0].out_features)


def _read(args: tuple, kwargs: dict, tap: A.Tap):
    if tap.name is not None and tap.name in kwargs:
        return kwargs[tap.name]
    if len(args) > tap.index:
        return args[tap.index]
    raise RuntimeError(f"tap {tap}: the module was called without that input")


def _write(args: tuple, kwargs: dict, tap: A.Tap, value):
    if tap.name is not None and tap.name in kwargs:
        return args, {**kwargs, tap.name: value}
    args = list(args)
    args[tap.index] = value
    return tuple(args), kwargs


SLOTS = ("ffn", "heads", "ffn_rv", "ffn_rs", "heads_rv", "heads_rs", "kv")


class UnitRecorder:
    """Context manager: per layer, records the units and the residual taps of both sub-blocks.

    After a forward, per layer ``i``: ``ffn[i]`` / ``heads[i]`` are the units (fresh ``view_as`` aliases of the
    projection's input, so a gradient w.r.t. them is the partial derivative through the projection only);
    ``ffn_rv[i]`` / ``heads_rv[i]`` the residual r and ``ffn_rs[i]`` / ``heads_rs[i]`` the sum s of each cut
    (see :mod:`irneurons.units.architectures`); ``kv[i]`` the encoder output aliased as this decoder layer's
    cross-attention keys/values (None outside decoders of encoder–decoders). :meth:`check_fired` raises if a tap
    did not fire: a silent no-op is an error.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.blocks = _blocks(model)
        self.n_layers = len(self.blocks)
        self.streams = [b.stack.stream for b in self.blocks]
        self.has_memory = [b.stack.memory is not None for b in self.blocks]
        self._ffn_mods, self._head_mods = ffn_modules(model), head_modules(model)
        self._handles: list = []
        self.reset()

    def reset(self) -> None:
        # In place: the hooks hold references to these lists.
        for name in SLOTS:
            if not hasattr(self, name):
                setattr(self, name, [None] * self.n_layers)
            getattr(self, name)[:] = [None] * self.n_layers

    def _store(self, store: list, i: int, value) -> None:
        if store[i] is not None:
            raise RuntimeError(f"layer {i}: a unit tap ran twice in one forward")
        store[i] = value

    def _alias_input0(self, store: list, i: int):
        def hook(module, args):
            units = args[0].view_as(args[0])
            self._store(store, i, units)
            return (units,) + tuple(args[1:])

        return hook

    def _alias_tap(self, store: list, i: int, tap: A.Tap):
        def hook(module, args, kwargs):
            value = _read(args, kwargs, tap)
            value = value.view_as(value)
            self._store(store, i, value)
            return _write(args, kwargs, tap, value)

        return hook

    def _capture(self, store: list, i: int, tap: A.Tap):
        if tap.at == "out":
            def hook(module, args, output):
                self._store(store, i, output[0] if isinstance(output, tuple) else output)
        else:
            def hook(module, args, kwargs):
                self._store(store, i, _read(args, kwargs, tap))
        return hook

    def _register(self, module: nn.Module, tap: A.Tap, hook) -> None:
        if tap.at == "out":
            self._handles.append(module.register_forward_hook(hook))
        else:
            self._handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))

    def __enter__(self) -> "UnitRecorder":
        for b in self.blocks:
            i = b.index
            self._handles.append(self._ffn_mods[i].register_forward_pre_hook(self._alias_input0(self.ffn, i)))
            self._handles.append(self._head_mods[i].register_forward_pre_hook(self._alias_input0(self.heads, i)))
            for cut, rv, rs in ((b.stack.ffn, self.ffn_rv, self.ffn_rs), (b.stack.heads, self.heads_rv, self.heads_rs)):
                for tap, store in ((cut.residual, rv), (cut.total, rs)):
                    module = A.submodule(b.module, tap.module, f"residual tap of layer {i}", self.model)
                    self._register(module, tap, self._capture(store, i, tap))
            if b.stack.memory is not None:
                tap = b.stack.memory
                module = A.submodule(b.module, tap.module, f"memory tap of layer {i}", self.model)
                self._handles.append(module.register_forward_pre_hook(self._alias_tap(self.kv, i, tap), with_kwargs=True))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def check_fired(self) -> None:
        missing = [
            f"{name}[{i}]"
            for name in SLOTS
            for i, t in enumerate(getattr(self, name))
            if t is None and (name != "kv" or self.has_memory[i])
        ]
        if missing:
            raise RuntimeError(
                f"unit hooks did not fire for {missing[:6]}{'...' if len(missing) > 6 else ''}: "
                f"the model's forward bypassed the modules of the {A.architecture(self.model).family} adapter"
            )

    def memory_terms(self, i: int) -> list[int]:
        """Layers whose ``kv`` edges bypass layer ``i``'s cuts: the later decoder layers (see the module doc)."""
        return [m for m in range(i + 1, self.n_layers) if self.has_memory[m]] if self.streams[i] == "decoder" else []


class EmbeddingOverride:
    """Context manager: a forward hook on the word-embedding module replacing its output.

    Set ``.value`` to a tensor of the module's output shape before the forward; ``None`` lets the
    real lookup through. Replacing the *output* of the lookup (rather than passing ``inputs_embeds``)
    keeps every other input of the model exactly as for the real input: RoBERTa, for one, derives
    position ids from ``input_ids`` but not from ``inputs_embeds``. Where the table is shared with a
    decoder (T5) only the first lookup of each forward is overridden (the encoder's); later ones pass.
    """

    def __init__(self, model: nn.Module):
        self.module = word_embeddings(model)
        self.first_only = A.architecture(model).first_lookup_only
        self.value: torch.Tensor | None = None
        self.fired = False
        self._handle = None

    def _hook(self, module, inputs, output):
        if self.value is None or (self.first_only and self.fired):
            return None
        self.fired = True
        if self.value.shape != output.shape:
            raise RuntimeError(f"embedding override has shape {tuple(self.value.shape)}, expected {tuple(output.shape)}")
        return self.value

    def __enter__(self) -> "EmbeddingOverride":
        self._handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()
        self.value = None
