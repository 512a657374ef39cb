"""The workflow scripts' shared job preamble: the model a job runs (``model.json`` -> model and tokenizer on the
job's device) and the numerics record stamped into its outputs.

A script that loads the study's model starts with ``setup_logging(snakemake.log[0])`` and then
``job = load_job_model(snakemake, bf16=...)``. Torch-free at import (the Snakefile's parse imports the workflow
package); the model loading imports torch when called.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from irneurons.numerics import numerics_record
from irneurons.rankers.loading import load_from_ref, pick_device, read_model_ref


class JobModel(NamedTuple):
    """What a model job works with: the loaded model and tokenizer, their ``model.json`` record, the device
    (``"cuda"`` or ``"cpu"``) and the numerics record (bf16 choice; None when not asked for)."""

    net: Any
    tokenizer: Any
    ref: dict
    device: str
    numerics: dict | None


def job_device(snakemake) -> str:
    """The device of a Snakemake job: cuda when available, else cpu with the job's ``threads`` torch threads."""
    return pick_device(snakemake.threads)


def load_job_model(snakemake, bf16="auto", ref: dict | None = None) -> JobModel:
    """Load the study's model for a Snakemake job (the model record is its ``input.model``).

    Args:
        snakemake: the ``snakemake`` object of a script rule with ``input.model`` (``model.json``) and ``threads``.
        bf16: the job's bf16 setting (``auto``, true or false, as in the config's ``nig`` / ``rerank``); None:
            no numerics record (``JobModel.numerics`` is None).
        ref: the model record when the script read it already (:func:`irneurons.rankers.loading.read_model_ref`).

    Returns:
        A :class:`JobModel` (``net, tokenizer, ref, device, numerics``): the model in eval mode on ``device``,
        its tokenizer carrying the query-truncation policy of ``ref``.

    Examples:
        >>> job = load_job_model(snakemake, bf16=snakemake.params.rerank.get("bf16", "auto"))  # doctest: +SKIP
        >>> job.net, job.numerics["bf16"]  # doctest: +SKIP
    """
    ref = read_model_ref(snakemake.input.model) if ref is None else ref
    device = job_device(snakemake)
    net, tokenizer = load_from_ref(ref, device)
    return JobModel(net, tokenizer, ref, device, None if bf16 is None else numerics_record(bf16, device))
