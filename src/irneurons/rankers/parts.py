"""Token parts and baselines.

Every pair is read as six part slots: 0 CLS, 1 query, 2 SEP₁, 3 passage, 4 SEP₂, 5 pad. For cross-encoders
they are literally ``[CLS] query [SEP] passage [SEP]``; for prompted models (monoT5, LLM re-rankers) slot 0
is the template text before the query (with a BOS token), 2 the text between query and passage, 4 the text
after the passage (with EOS; the T5 decoder step and the LLM's answer position are there); for bi-encoders
0 and 2 are the query pass's special tokens, 3 the passage and 4 the passage pass's special tokens
(:data:`PART_LABELS`).
"""

from __future__ import annotations

import numpy as np
import torch

from irneurons.rankers.kinds import KINDS

PART_NAMES = ("cls", "query", "sep1", "passage", "sep2", "pad")
N_PARTS = len(PART_NAMES)
CLS, QUERY, SEP1, PASSAGE, SEP2, PAD = range(N_PARTS)

#: What the six slots hold, per model kind (:attr:`irneurons.rankers.kinds.Kind.part_labels`).
PART_LABELS = {name: kind.part_labels for name, kind in KINDS.items()}
BASELINES = ("pad_query", "pad_query_passage", "pad_all")



def token_parts(
    input_ids: torch.Tensor,
    token_type_ids: torch.Tensor | None,
    attention_mask: torch.Tensor,
    cls_id: int,
    sep_id: int,
) -> torch.Tensor:
    """Part index per token, [B, T] long: 0 CLS, 1 query, 2 SEP₁, 3 passage, 4 SEP₂, 5 pad.

    Reads the special tokens, not ``token_type_ids`` (RoBERTa has none): SEP₁ is the first run of
    consecutive separators (one ``[SEP]`` in BERT, ``</s></s>`` in RoBERTa), SEP₂ the last separator;
    a separator inside the passage counts as passage. Tokens masked out are pad.
    """
    del token_type_ids  # accepted for the call convention; separators are more robust
    ids = input_ids.detach().cpu().numpy()
    mask = attention_mask.detach().cpu().numpy().astype(bool)
    parts = np.full(ids.shape, PAD, dtype=np.int64)
    for b in range(ids.shape[0]):
        real = np.flatnonzero(mask[b])
        if real.size == 0:
            continue
        seps = real[ids[b, real] == sep_id]
        if real[0] != 0 or ids[b, 0] != cls_id or seps.size < 2:
            raise ValueError(
                f"row {b}: expected '[CLS] query [SEP] passage [SEP]' (cls_id={cls_id}, sep_id={sep_id}), "
                f"got {seps.size} separators"
            )
        first = seps[0]
        run_end = first  # last index of the first run of separators
        while run_end + 1 <= real[-1] and ids[b, run_end + 1] == sep_id and mask[b, run_end + 1]:
            run_end += 1
        last = seps[-1]
        if last <= run_end:  # empty passage: '[SEP][SEP]' is SEP₁ then SEP₂
            run_end = last - 1
        parts[b, real] = PASSAGE
        parts[b, 0] = CLS
        parts[b, 1:first] = QUERY
        parts[b, first : run_end + 1] = SEP1
        parts[b, last] = SEP2
    return torch.from_numpy(parts).to(input_ids.device)


def baseline_ids(input_ids: torch.Tensor, parts: torch.Tensor, pad_id: int, baseline: str) -> torch.Tensor:
    """Token-level baseline x' (same length as the input; pad positions stay pad).

    ``pad_query``: query → [PAD]; ``pad_query_passage``: query and passage → [PAD] (CLS/SEPs kept);
    ``pad_all``: every token → [PAD], CLS and SEPs included.
    """
    if baseline == "pad_query":
        replace = parts == QUERY
    elif baseline == "pad_query_passage":
        replace = (parts == QUERY) | (parts == PASSAGE)
    elif baseline == "pad_all":
        replace = torch.ones_like(parts, dtype=torch.bool)
    else:
        raise ValueError(f"unknown baseline {baseline!r}; choose one of {BASELINES}")
    return torch.where(replace, torch.full_like(input_ids, pad_id), input_ids)
