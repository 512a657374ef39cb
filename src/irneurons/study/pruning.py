"""Pruning: zero selected FFN neurons or whole attention heads with forward pre-hooks (weights never change).

FFN neuron (layer l, unit j): channel j of the input of layer l's FFN down-projection (the post-activation
value, or the gated product of a gated MLP; :mod:`irneurons.units.architectures`) set to 0, for every token or only
for the tokens of one part slot (:mod:`irneurons.rankers.parts`). Head (layer l, head h): the slice
[h·d_head, (h+1)·d_head) of the input of layer l's attention output projection (the head's context vectors)
set to 0, i.e. the head contributes nothing. The same hooks serve every architecture and kind; decoder
positions (T5) count as the suffix slot. Hooks live only inside the ``with`` block.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict

import torch

from irneurons.errors import InputError
from irneurons.units import hooks as U
from irneurons.units.unitsets import UnitSet


class Pruning:
    """Context manager that zeroes ``ffn`` [(layer, unit)] and ``heads`` [(layer, head)] of ``model``.

    ``part``: None for all tokens, else a part index of :data:`irneurons.rankers.parts.PART_NAMES`; the token parts of
    the current batch must then be given with :meth:`set_batch` before each forward.
    """

    def __init__(self, model, ffn=(), heads=(), part: int | None = None):
        self.model, self.part = model, part
        self.ffn, self.heads = defaultdict(list), defaultdict(list)
        for layer, unit in ffn:
            self.ffn[int(layer)].append(int(unit))
        for layer, head in heads:
            self.heads[int(layer)].append(int(head))
        self.layout = U.layout(model)
        UnitSet(ffn=[(l, u) for l, us in self.ffn.items() for u in us],
                heads=[(l, h) for l, hs in self.heads.items() for h in hs]).check(self.layout)
        self._handles = []
        self._parts: torch.Tensor | None = None

    def set_batch(self, input_ids, token_type_ids, attention_mask, cls_id: int, sep_id: int) -> None:
        """Token parts of the next batch (needed only for part-restricted pruning)."""
        if self.part is not None:
            from irneurons.rankers.parts import token_parts

            self._parts = token_parts(input_ids, token_type_ids, attention_mask, cls_id, sep_id)

    def observe(self, tokenizer):
        """A ``before_forward`` callback for :func:`irneurons.rankers.scoring.score_pairs`: records each batch's parts
        (given as ``parts`` by the non-cross-encoder kinds, read from the special tokens otherwise)."""

        def callback(enc):
            if self.part is not None and "parts" in enc:
                self._parts = enc["parts"]
                return
            self.set_batch(enc["input_ids"], enc.get("token_type_ids"), enc["attention_mask"],
                           tokenizer.cls_token_id, tokenizer.sep_token_id)

        return callback

    def _keep(self, x: torch.Tensor, channels: torch.Tensor) -> torch.Tensor:
        """Multiplier for x [B, T, C]: 0 on the selected channels (at the chosen part's tokens), 1 elsewhere."""
        keep = torch.ones(x.shape[-1], dtype=x.dtype, device=x.device)
        keep[channels.to(x.device)] = 0
        if self.part is None:
            return keep
        if self._parts is None:
            raise RuntimeError("part-restricted pruning needs set_batch(...) before the forward pass")
        parts = self._parts.to(x.device)
        if parts.shape[1] != x.shape[1]:  # decoder positions: the suffix slot
            from irneurons.rankers.parts import SEP2

            parts = torch.full(x.shape[:2], SEP2, dtype=parts.dtype, device=x.device)
        at_part = (parts == self.part)[..., None]  # [B, T, 1]
        return torch.where(at_part, keep, torch.ones_like(keep))

    def _hook(self, channels: torch.Tensor):
        def pre_hook(module, args, kwargs):
            if args:
                return (args[0] * self._keep(args[0], channels),) + tuple(args[1:]), kwargs
            x = kwargs["hidden_states"]
            return args, {**kwargs, "hidden_states": x * self._keep(x, channels)}

        return pre_hook

    def __enter__(self):
        d_head = self.layout.d_head
        ffn_mods, head_mods = U.ffn_modules(self.model), U.head_modules(self.model)
        for layer, units in self.ffn.items():
            self._handles.append(ffn_mods[layer].register_forward_pre_hook(self._hook(torch.tensor(units)), with_kwargs=True))
        for layer, heads in self.heads.items():
            chans = torch.tensor([h * d_head + i for h in heads for i in range(d_head)])
            self._handles.append(head_mods[layer].register_forward_pre_hook(self._hook(chans), with_kwargs=True))
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles.clear()
        return False


def pruned_scores_many(model, tokenizer, queries, passages, unit_sets, options=None, *, part: int | None = None,
                       **overrides):
    """Scores of the same pairs with each of several unit sets removed in turn, sharing one model load and one
    tokenisation: the pairs are length-sorted and encoded once (:func:`irneurons.rankers.scoring.encode_batches`), then
    every set is scored over the same batches (kinds scored in batches, :attr:`irneurons.rankers.kinds.Kind.batched`;
    the others are scored set by set). ``unit_sets``: [{"ffn": [(l, u)], "heads": [(l, h)]}]; ``options``: a
    :class:`irneurons.rankers.options.ScoringOptions` (``overrides`` of its fields on top); ``part``: FFN zeroing only
    at that part's tokens. Returns one score array [N] per set, in input order; each equals :func:`pruned_scores` of
    that set."""
    from dataclasses import replace

    from tqdm.auto import tqdm

    from irneurons.rankers.kinds import spec_of
    from irneurons.rankers.options import ScoringOptions
    from irneurons.rankers.scoring import encode_batches, score_batches, score_pairs

    opts = ScoringOptions.of(options, **overrides)
    sets = tqdm(unit_sets, desc="unit sets", unit="set", disable=not opts.progress or len(unit_sets) < 2)
    out = []
    if not spec_of(model).kind_info.batched:  # scored set by set (no shared tokenisation)
        for units in sets:
            with Pruning(model, ffn=units.get("ffn", ()), heads=units.get("heads", ()), part=part) as pruning:
                out.append(score_pairs(model, tokenizer, queries, passages, replace(opts, progress=False),
                                       before_forward=pruning.observe(tokenizer)))
        return out
    batches = encode_batches(tokenizer, queries, passages, opts)
    per_set = replace(opts, progress=opts.progress and len(unit_sets) < 2)
    for units in sets:
        with Pruning(model, ffn=units.get("ffn", ()), heads=units.get("heads", ()), part=part) as pruning:
            out.append(score_batches(model, batches, len(queries), per_set, before_forward=pruning.observe(tokenizer)))
    return out


def pruned_scores(model, tokenizer, queries, passages, *, ffn=(), heads=(), part: int | None = None, **score_kwargs):
    """:func:`irneurons.rankers.scoring.score_pairs` with ``ffn`` neurons / ``heads`` zeroed (FFN only at ``part``'s
    tokens if given); ``score_kwargs``: ``options=`` a :class:`irneurons.rankers.options.ScoringOptions` and / or
    overrides of its fields. Same batching as unpruned scoring; with nothing to prune the scores are bit-identical."""
    from irneurons.rankers.scoring import score_pairs

    with Pruning(model, ffn=ffn, heads=heads, part=part) as pruning:
        return score_pairs(model, tokenizer, queries, passages, before_forward=pruning.observe(tokenizer),
                           **score_kwargs)


@contextlib.contextmanager
def pruned(model, units, *, part: int | str | None = None, index: int = 0):
    """Inside the ``with`` block ``model`` runs with ``units`` zeroed; afterwards it is as before.

    ``units``: a saved set (``results/<name>/sets/.../<fraction>.json`` path or its dict; ``index`` picks one of
    a random strategy's sets), unit ids (``ffn:3:117``, ``head:2:5``) or a :class:`irneurons.units.unitsets.UnitSet`.
    ``part`` (a part name or index) restricts FFN zeroing to one part's tokens; the forward must then go through
    :func:`irneurons.rankers.scoring.score_pairs` with ``before_forward=pruning.observe(tokenizer)``. Yields the
    :class:`Pruning`::

        with pruned(model, "results/default/sets/ffn/cranfield/nig_top/0.01.json"):
            scores = score_pairs(model, tokenizer, queries, passages)

    A unit the model does not have (layer beyond its depth, index beyond its FFN width or head count) or a
    malformed set raises a one-line :class:`irneurons.errors.UnitError` before any hook is placed.
    """
    from irneurons.rankers.parts import PART_NAMES

    chosen = UnitSet.parse(units, index)
    if isinstance(part, str):
        if part not in PART_NAMES:
            raise InputError(f"part {part!r} is not one of {', '.join(PART_NAMES)}")
        part = PART_NAMES.index(part)
    chosen.check(model)  # a one-line UnitError naming the unit the model does not have
    with Pruning(model, ffn=chosen.ffn, heads=chosen.heads, part=part) as pruning:
        yield pruning
