r"""Ranker kinds as one table, :data:`KINDS`: how a model of each kind is loaded, how a (query, passage) pair
becomes token ids with parts, what the relevance F is and how pairs are scored.

- ``cross_encoder``: ``[CLS] q [SEP] p [SEP]`` → a 1- or 2-logit head; F by ``target``
  (:func:`irneurons.rankers.relevance.relevance`).
- ``t5`` (monoT5): the prompt (default ``Query: {query} Document: {passage} Relevant:``) + EOS into the encoder,
  the decoder start token into the decoder; F = z(true) − z(false) at the first decoder step.
- ``causal_lm`` (decoder LLM re-rankers): the prompt (:attr:`Kind.prompt`), right-padded;
  F = z(yes) − z(no) at the last real position.
- ``bi_encoder``: query and passage encoded separately (two *streams*), pooled (mean over real tokens, or the
  first token), F = cos(e_q, e_p) or e_q · e_p.

Prompted kinds tokenize each template segment separately and concatenate the ids, so the parts (prefix,
query, middle, passage, suffix) are exact; queries are cut to their budget
(:func:`irneurons.rankers.encoding.query_budget`) and passages to what is left of ``max_length``. Every kind
returns an :class:`irneurons.rankers.pairs.Encoded` of shape [N, S, T] (S = :attr:`Kind.streams`) and computes F
from model rows laid out stream-major ([S·R, T]).

The table is torch-free: its functions are named ``module:function`` (:class:`Function`) and imported on first
call, so that :mod:`irneurons.rankers.loading` (imported when Snakemake parses the workflow) stays light. Callers
never branch on a kind's name; they read its row: ``KINDS[spec.kind].encode(...)``, ``spec.kind_info.head``.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

from irneurons.errors import RankerError


@dataclass(frozen=True)
class Function:
    """A function named ``"module:name"``, imported on its first call (keeps :data:`KINDS` free of torch)."""

    path: str

    def __call__(self, *args, **kwargs):
        module, name = self.path.split(":")
        return getattr(importlib.import_module(module), name)(*args, **kwargs)


@dataclass(frozen=True)
class Kind:
    """One row of :data:`KINDS`: everything that differs between ranker kinds.

    Attributes:
        name: the kind's name (``model.kind`` in the config).
        label: how tables and figures name a model of this kind.
        auto_class: the ``transformers`` auto class that loads it (``from_pretrained`` / ``from_config``).
        streams: 1 (query and passage in one sequence), 2 (encoded separately: a bi-encoder).
        prompt: the default prompt (prompted kinds; ``{query}`` then ``{passage}``), else None.
        answers: the default answer words (z(first) − z(second) is F), else None.
        padding_side: the tokenizer's padding side to set on load (None: keep the tokenizer's).
        bos: prompted encodings start with the tokenizer's BOS token (when it adds one).
        eos: prompted encodings end with the EOS token.
        head: a classification head whose ``target`` is resolved (``auto`` / ``logit`` / ``logit_diff`` /
            ``prob``, :func:`irneurons.rankers.relevance.resolve_target`); ``num_labels`` applies on load.
        token_type_ids: the model takes ``token_type_ids``.
        batched: scored through :func:`irneurons.rankers.scoring.encode_batches` /
            :func:`irneurons.rankers.scoring.score_batches`, so several unit sets can share one tokenisation.
        embeds: pooled query and passage embeddings (dense retrieval is possible).
        part_labels: what the six part slots hold (:mod:`irneurons.rankers.parts`).
        encode: ``(spec, tokenizer, queries, passages, max_length, share) -> Encoded`` [N, S, T].
        relevance: ``(spec, model, kwargs, n_streams, answers) -> F`` [R] from rows laid out [S·R, T].
        score: ``(model, tokenizer, queries, passages, options, before_forward) -> scores`` [N] (float64).
    """

    name: str
    label: str
    auto_class: str
    streams: int
    prompt: str | None
    answers: tuple[str, str] | None
    padding_side: str | None
    bos: bool
    eos: bool
    head: bool
    token_type_ids: bool
    batched: bool
    embeds: bool
    part_labels: tuple[str, ...]
    encode: Function
    relevance: Function
    score: Function

    @property
    def prompted(self) -> bool:
        """True for kinds that wrap the pair in a prompt and read F from two answer tokens."""
        return self.prompt is not None

    def model_class(self):
        """The ``transformers`` auto class of this kind (imports transformers)."""
        import transformers

        return getattr(transformers, self.auto_class)


_PARTS = ("cls", "query", "sep1", "passage", "sep2", "pad")
_PROMPT_PARTS = ("prefix", "query", "middle", "passage", "suffix", "pad")
_PAIRS, _REL, _SCORE = "irneurons.rankers.pairs", "irneurons.rankers.relevance", "irneurons.rankers.scoring"

#: name → :class:`Kind`, the one place where ranker kinds differ.
KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(name="cross_encoder", label="cross-encoder", auto_class="AutoModelForSequenceClassification",
             streams=1, prompt=None, answers=None, padding_side=None, bos=False, eos=False, head=True,
             token_type_ids=True, batched=True, embeds=False, part_labels=_PARTS,
             encode=Function(f"{_PAIRS}:encode_cross"), relevance=Function(f"{_REL}:head_rows"),
             score=Function(f"{_SCORE}:score_cross")),
        Kind(name="t5", label="monoT5", auto_class="AutoModelForSeq2SeqLM", streams=1,
             prompt="Query: {query} Document: {passage} Relevant:", answers=("true", "false"), padding_side=None,
             bos=False, eos=True, head=False, token_type_ids=False, batched=False, embeds=False,
             part_labels=_PROMPT_PARTS, encode=Function(f"{_PAIRS}:encode_prompted"),
             relevance=Function(f"{_REL}:decoder_step_rows"), score=Function(f"{_SCORE}:score_prompted")),
        Kind(name="causal_lm", label="LLM re-ranker", auto_class="AutoModelForCausalLM", streams=1,
             prompt="Judge whether the passage answers the query.\nQuery: {query}\nPassage: {passage}\n"
                    "Is the passage relevant (yes or no)? Answer:",
             answers=(" yes", " no"), padding_side="right", bos=True, eos=False, head=False, token_type_ids=False,
             batched=False, embeds=False, part_labels=_PROMPT_PARTS, encode=Function(f"{_PAIRS}:encode_prompted"),
             relevance=Function(f"{_REL}:last_token_rows"), score=Function(f"{_SCORE}:score_prompted")),
        Kind(name="bi_encoder", label="bi-encoder", auto_class="AutoModel", streams=2, prompt=None, answers=None,
             padding_side=None, bos=False, eos=False, head=False, token_type_ids=True, batched=False, embeds=True,
             part_labels=("query_cls", "query", "query_sep", "passage", "passage_special", "pad"),
             encode=Function(f"{_PAIRS}:encode_bi"), relevance=Function(f"{_REL}:similarity_rows"),
             score=Function(f"{_SCORE}:score_bi")),
    )
}
#: The default prompt / answers of the prompted kinds (read from :data:`KINDS`).
DEFAULT_PROMPTS = {name: k.prompt for name, k in KINDS.items() if k.prompted}
DEFAULT_ANSWERS = {name: k.answers for name, k in KINDS.items() if k.prompted}
POOLINGS = ("mean", "cls")
SIMILARITIES = ("cosine", "dot")
AUTO = "auto"


@dataclass(frozen=True)
class RankerSpec:
    """How to use a model as a ranker (``model.kind`` and its settings).

    ``kind``, ``pooling`` and ``similarity`` may be ``"auto"``: :meth:`resolved` (what
    :func:`irneurons.rankers.loading.load_ranker` does) detects the kind from the model's config and takes a
    bi-encoder's pooling / similarity from its sentence-transformers folder (else mean, cosine). Prompted kinds
    get their default prompt and answers (:data:`KINDS`) when none are given.

    Examples:
        >>> RankerSpec("t5").answers
        ('true', 'false')
        >>> RankerSpec("bi_encoder", similarity="dot").n_streams
        2
    """

    kind: str = "cross_encoder"
    target: str = "auto"
    prompt: str | None = None
    answers: tuple[str, str] | None = None
    pooling: str = "mean"
    similarity: str = "cosine"

    def __post_init__(self):
        if self.kind not in KINDS and self.kind != AUTO:
            raise RankerError(f"model.kind {self.kind!r} is not one of {(*KINDS, AUTO)}")
        if self.pooling not in POOLINGS and self.pooling != AUTO:
            raise RankerError(f"model.pooling {self.pooling!r} is not one of {(*POOLINGS, AUTO)}")
        if self.similarity not in SIMILARITIES and self.similarity != AUTO:
            raise RankerError(f"model.similarity {self.similarity!r} is not one of {(*SIMILARITIES, AUTO)}")
        if self.answers is not None:
            object.__setattr__(self, "answers", tuple(self.answers))
        kind = KINDS.get(self.kind)
        if kind is not None and kind.prompted:
            prompt = self.prompt or kind.prompt
            once_each = prompt.count("{query}") == 1 and prompt.count("{passage}") == 1
            if not once_each or prompt.index("{query}") > prompt.index("{passage}"):
                raise RankerError(f"model.prompt must hold {{query}} then {{passage}} once each, got {prompt!r}")
            object.__setattr__(self, "prompt", prompt)
            object.__setattr__(self, "answers", tuple(self.answers or kind.answers))

    @property
    def kind_info(self) -> Kind:
        """This spec's row of :data:`KINDS`."""
        if self.kind not in KINDS:
            raise RankerError(f"model.kind {self.kind!r} is not resolved yet (RankerSpec.resolved)")
        return KINDS[self.kind]

    @property
    def n_streams(self) -> int:
        return self.kind_info.streams

    def resolved(self, hf_config, folder: str | None = None) -> RankerSpec:
        """This spec with ``"auto"`` settled for a model: the kind by :func:`detect_kind`; pooling / similarity
        from a sentence-transformers ``folder`` for bi-encoders (:func:`sentence_transformers_pooling`), else
        mean / cosine."""
        kind = detect_kind(hf_config, folder) if self.kind == AUTO else self.kind
        st_pooling, st_similarity = sentence_transformers_pooling(folder) if KINDS[kind].embeds else (None, None)
        pooling = self.pooling if self.pooling != AUTO else st_pooling or "mean"
        similarity = self.similarity if self.similarity != AUTO else st_similarity or "cosine"
        return replace(self, kind=kind, pooling=pooling, similarity=similarity)


#: What :func:`irneurons.rankers.loading.load_ranker` starts from when given no spec: everything detected.
DETECTED = RankerSpec(kind=AUTO, pooling=AUTO, similarity=AUTO)
SPEC_ATTR = "irneurons_spec"


def attach(model, spec: RankerSpec):
    """Attach ``spec`` to ``model`` (scoring, pruning and NIG read it with :func:`spec_of`); returns the model."""
    setattr(model, SPEC_ATTR, spec)
    return model


def spec_of(model, target: str | None = None) -> RankerSpec:
    """The spec attached to ``model`` (a cross-encoder spec if none); ``target`` overrides the target of a kind
    with a classification head."""
    spec = getattr(model, SPEC_ATTR, None) or RankerSpec()
    return replace(spec, target=target) if target is not None and spec.kind_info.head else spec


def detect_kind(hf_config, folder: str | None = None) -> str:
    """Kind from a model's config: T5 → ``t5``; ``*ForCausalLM`` → ``causal_lm``; ``*ForSequenceClassification``
    → ``cross_encoder``; a sentence-transformers folder (``modules.json``) or a bare encoder → ``bi_encoder``."""
    archs = list(getattr(hf_config, "architectures", None) or [])
    if hf_config.model_type in ("t5", "mt5"):
        return "t5"
    if any(a.endswith("ForCausalLM") for a in archs):
        return "causal_lm"
    if any(a.endswith("ForSequenceClassification") for a in archs):
        return "cross_encoder"
    if folder is not None and (Path(folder) / "modules.json").is_file():
        return "bi_encoder"
    if archs and all(a.endswith("Model") for a in archs):
        return "bi_encoder"
    return "cross_encoder"


def sentence_transformers_pooling(folder: str | None) -> tuple[str | None, str | None]:
    """(pooling, similarity) declared by a sentence-transformers folder (``1_Pooling/config.json``, a
    ``Normalize`` module → cosine), or (None, None)."""
    if folder is None or not (Path(folder) / "modules.json").is_file():
        return None, None
    modules = json.loads((Path(folder) / "modules.json").read_text())
    pooling, similarity = None, "dot"
    for m in modules:
        module_type = m.get("type", "")
        if module_type.endswith("Pooling"):
            cfg_path = Path(folder) / m.get("path", "") / "config.json"
            if cfg_path.is_file():
                cfg = json.loads(cfg_path.read_text())
                pooling = "cls" if cfg.get("pooling_mode_cls_token") else "mean"
        if module_type.endswith("Normalize"):
            similarity = "cosine"
    return pooling, similarity
