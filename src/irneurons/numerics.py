"""Numerics that follow the hardware: whether to run the forward under bfloat16 autocast.

Every ``bf16`` key of the config (``finetune.bf16``, ``rerank.bf16``, ``nig.bf16``) takes ``auto``, ``true``
or ``false``. ``true``/``false`` force the choice; ``auto`` uses bf16 only where the device runs it natively:

- CUDA: ``torch.cuda.is_bf16_supported()`` and compute capability >= 8 (Ampere and later; older GPUs
  emulate bf16, which is slower than fp32).
- CPU: only with the ``avx512_bf16`` or ``amx_bf16`` instruction-set flags (read from ``/proc/cpuinfo``).
  Without them (e.g. AVX2-only AMD EPYC) autocast emulates bf16 and runs ~27x slower than fp32. Where
  ``/proc/cpuinfo`` cannot be read (macOS, Windows) the choice is conservative: fp32.
- Anything else (mps, xpu, ...): fp32.

Whatever the forward runs in, the classification head and the relevance target F stay in fp32
(:func:`irneurons.rankers.loading.keep_head_in_full_precision`), so bf16 scores do not collapse into ties.
:func:`numerics_record` is the record the scripts log and stamp into their outputs.
"""

from __future__ import annotations

import logging
import platform

log = logging.getLogger(__name__)

CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
CPUINFO = "/proc/cpuinfo"


def _cpuinfo_lines():
    with open(CPUINFO) as fh:
        return fh.read().splitlines()


def cpu_flags() -> set[str] | None:
    """The CPU's instruction-set flags from ``/proc/cpuinfo`` (``flags`` / ``Features`` lines); None if unreadable.

    The one place the CPU is probed, so that tests can mock it.
    """
    try:
        lines = _cpuinfo_lines()
    except OSError:
        return None
    flags: set[str] = set()
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return flags or None


def cpu_model() -> str | None:
    """The CPU's model name (``/proc/cpuinfo``, else ``platform.processor()``), or None when unknown."""
    try:
        for line in _cpuinfo_lines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def _device(device):
    import torch

    return device if isinstance(device, torch.device) else torch.device(device)


def native_bf16(device) -> tuple[bool, str]:
    """Whether ``device`` (a torch.device or a string such as ``"cpu"``, ``"cuda:0"``) runs bf16 natively, and why.

    Returns (native, reason); the reason is a short phrase for logs, e.g. ``"cpu with amx_bf16"``.
    """
    import torch

    dev = _device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return False, "cuda not available"
        major, minor = torch.cuda.get_device_capability(dev)
        if major < 8:
            return False, f"cuda compute capability {major}.{minor} < 8.0 (bf16 emulated)"
        if not torch.cuda.is_bf16_supported():
            return False, "cuda without bf16 support"
        return True, f"cuda compute capability {major}.{minor}"
    if dev.type == "cpu":
        flags = cpu_flags()
        if flags is None:
            cap = torch.backends.cpu.get_cpu_capability()
            return False, f"cpu flags unknown (torch capability {cap}); assuming no native bf16"
        have = [f for f in CPU_BF16_FLAGS if f in flags]
        if have:
            return True, f"cpu with {'/'.join(have)}"
        return False, f"cpu without {'/'.join(CPU_BF16_FLAGS)}"
    return False, f"{dev.type}: bf16 autocast only used natively on cuda and cpu"


def _parse(setting) -> bool | str:
    """``"auto"``, True or False from a config value; ValueError for anything else."""
    if isinstance(setting, bool):
        return setting
    if isinstance(setting, str) and setting.strip().lower() in ("auto", "true", "false"):
        s = setting.strip().lower()
        return s if s == "auto" else s == "true"
    raise ValueError(f"bf16 setting {setting!r} is not one of auto, true, false")


def resolve_bf16(setting, device) -> bool:
    """The bf16 decision for ``device``: True/False (or ``"true"``/``"false"``) as given, ``"auto"`` → native.

    Raises ValueError (one line, naming the value) for anything else.
    """
    choice = _parse(setting)
    if choice == "auto":
        return native_bf16(device)[0]
    return choice


def numerics_record(setting, device) -> dict:
    """Resolve ``setting`` for ``device``, log the choice (one line) and return the record to stamp into outputs:

    ``{"bf16_setting", "bf16", "native_bf16", "reason", "device", "cpu_model"}``. Forcing bf16 on a device
    without native support is logged as a warning (it is emulated and slow).
    """
    choice = _parse(setting)
    native, reason = native_bf16(device)
    bf16 = native if choice == "auto" else choice
    label = choice if choice == "auto" else str(choice).lower()
    dev = _device(device)
    why = reason if choice == "auto" else f"set to {label}; {reason}"
    log.info("numerics: bf16=%s -> %s (%s)", label, "bf16" if bf16 else "fp32", why)
    if bf16 and not native:
        log.warning("numerics: bf16 forced on %s without native bf16 (%s): emulated, much slower than fp32", dev, reason)
    return {
        "bf16_setting": label,
        "bf16": bool(bf16),
        "native_bf16": native,
        "reason": why,
        "device": str(dev),
        "cpu_model": cpu_model(),
    }


HEAD_MODULES = ("pooler", "pre_classifier", "classifier", "head", "lm_head")


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
