"""Input-level attributions for the token view: integrated gradients of the relevance score F with respect to
the word embeddings (captum ``LayerIntegratedGradients``), summed over the embedding dimension per token.

IG_t = (e_t − e'_t) · ∫₀¹ ∂F/∂e_t (e' + α (e − e')) dα, with e the word embeddings of the input and e' those of
the baseline tokens (see :func:`irneurons.rankers.parts.baseline_ids`; positions, token types and mask stay real).
Completeness: Σ_t IG_t ≈ F(x) − F(x') (the ``delta`` column is captum's convergence delta).
"""

from __future__ import annotations

import pandas as pd
import torch

from irneurons.units import hooks as units
from irneurons.rankers.parts import PART_NAMES, baseline_ids, token_parts
from irneurons.rankers.encoding import encode
from irneurons.rankers.relevance import relevance


def token_attributions(model, tokenizer, queries, passages, *, pair_ids, labels, baseline: str = "pad_query_passage",
                       target: str = "auto", steps: int = 32, max_length: int = 128,
                       max_query_share: float | None = None) -> pd.DataFrame:
    """One row per real token of each pair: pair_id, label, f_x, f_baseline, delta, position, token, part,
    attribution (IG summed over the embedding dimension). Pairs are encoded as the re-ranker encodes them
    (queries cut by :func:`irneurons.rankers.loading.truncate_queries`; ``max_query_share`` None = the tokenizer's policy)."""
    from captum.attr import LayerIntegratedGradients

    model.eval()
    rows = []
    for pid, label, q, p in zip(pair_ids, labels, queries, passages):
        enc = encode(tokenizer, [q], [p], max_length, max_query_share=max_query_share)
        parts = token_parts(enc["input_ids"], enc.get("token_type_ids"), enc["attention_mask"],
                                tokenizer.cls_token_id, tokenizer.sep_token_id)
        base = baseline_ids(enc["input_ids"], parts, tokenizer.pad_token_id, baseline)
        extra = {k: v for k, v in enc.items() if k != "input_ids"}

        def forward(input_ids):
            n = input_ids.shape[0]
            kw = {k: v.expand(n, -1) for k, v in extra.items()}
            return relevance(model(input_ids=input_ids, **kw).logits, target)

        lig = LayerIntegratedGradients(forward, units.word_embeddings(model))
        attr, delta = lig.attribute(enc["input_ids"], baselines=base, n_steps=steps, internal_batch_size=steps,
                                    return_convergence_delta=True)
        with torch.no_grad():
            f_x, f_b = forward(enc["input_ids"]).item(), forward(base).item()
        per_token = attr.sum(-1)[0].detach().numpy()
        ids = enc["input_ids"][0].tolist()
        for pos, (tok, part, a) in enumerate(zip(tokenizer.convert_ids_to_tokens(ids), parts[0].tolist(), per_token)):
            rows.append({"pair_id": pid, "label": int(label), "f_x": f_x, "f_baseline": f_b, "delta": float(delta.item()),
                         "position": pos, "token": tok, "part": PART_NAMES[part], "attribution": float(a)})
    return pd.DataFrame(rows)


def example_pairs(pairs: pd.DataFrame, n: int) -> pd.DataFrame:
    """The first ``n`` relevant and ``n`` non-relevant pairs by pair_id (deterministic)."""
    ordered = pairs.sort_values("pair_id")
    return pd.concat([ordered[ordered["label"] == 1].head(n), ordered[ordered["label"] == 0].head(n)])
