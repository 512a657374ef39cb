"""bf16 follows the hardware (auto | true | false); the head and the target F always run in full precision."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from irneurons.rankers import scoring
from irneurons.rankers import encoding
from irneurons.retrieval import finetune
from irneurons.rankers import loading as model
from irneurons import numerics
from irneurons.workflow.configuration import ConfigError, check_config

from .conftest import DOCS, QUERIES, tiny_cross_encoder

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- deciding


@pytest.fixture
def no_bf16_cpu(monkeypatch):
    """A CPU like an AVX2-only AMD EPYC: no avx512_bf16, no amx_bf16."""
    monkeypatch.setattr(numerics, "cpu_flags", lambda: {"fpu", "sse4_2", "avx", "avx2", "fma"})


@pytest.mark.parametrize("flag", ["avx512_bf16", "amx_bf16"])
def test_auto_uses_bf16_on_cpus_with_native_bf16(monkeypatch, flag):
    monkeypatch.setattr(numerics, "cpu_flags", lambda: {"avx2", "avx512f", flag})
    native, reason = numerics.native_bf16("cpu")
    assert native and flag in reason
    assert numerics.resolve_bf16("auto", "cpu") is True


def test_auto_is_fp32_on_cpus_without_native_bf16(no_bf16_cpu):
    native, reason = numerics.native_bf16(torch.device("cpu"))
    assert not native and "avx512_bf16/amx_bf16" in reason
    assert numerics.resolve_bf16("auto", "cpu") is False
    # an explicit choice wins over the hardware
    assert numerics.resolve_bf16(True, "cpu") is True and numerics.resolve_bf16("true", "cpu") is True
    assert numerics.resolve_bf16("false", "cpu") is False and numerics.resolve_bf16(False, "cpu") is False


def test_cpu_flags_from_cpuinfo_and_conservative_fallback(monkeypatch, tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu avx2 amx_bf16 amx_tile\n\n"
                    "processor\t: 1\nflags\t\t: fpu avx2 amx_bf16 amx_tile\n")
    monkeypatch.setattr(numerics, "CPUINFO", str(info))
    assert numerics.cpu_flags() == {"fpu", "avx2", "amx_bf16", "amx_tile"}
    assert numerics.cpu_model() == "Test CPU"
    assert numerics.native_bf16("cpu")[0]
    monkeypatch.setattr(numerics, "CPUINFO", str(tmp_path / "missing"))  # macOS, Windows: no /proc/cpuinfo
    assert numerics.cpu_flags() is None
    native, reason = numerics.native_bf16("cpu")
    assert not native and "unknown" in reason and not numerics.resolve_bf16("auto", "cpu")


@pytest.mark.parametrize("capability,supported,expected", [((8, 0), True, True), ((9, 0), True, True),
                                                           ((7, 5), True, False), ((8, 6), False, False)])
def test_auto_on_cuda_needs_compute_capability_8(monkeypatch, capability, supported, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: supported)
    assert numerics.native_bf16("cuda:0")[0] is expected
    assert numerics.resolve_bf16("auto", torch.device("cuda")) is expected


def test_auto_is_fp32_elsewhere(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert numerics.native_bf16("cuda") == (False, "cuda not available")
    assert numerics.resolve_bf16("auto", "mps") is False


@pytest.mark.parametrize("bad", ["maybe", "yes", 1, None, "bf16"])
def test_bad_setting_is_a_one_line_error_naming_it(bad):
    with pytest.raises(ValueError, match=f"bf16 setting {bad!r} is not one of auto, true, false"):
        numerics.resolve_bf16(bad, "cpu")


def test_numerics_record_is_logged_and_stampable(no_bf16_cpu, caplog):
    with caplog.at_level(logging.INFO, logger="irneurons.numerics"):
        rec = numerics.numerics_record("auto", "cpu")
    assert rec["bf16_setting"] == "auto" and rec["bf16"] is False and rec["device"] == "cpu"
    assert set(rec) >= {"bf16_setting", "bf16", "reason", "device", "cpu_model"}
    assert "numerics: bf16=auto -> fp32 (cpu without avx512_bf16/amx_bf16)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="irneurons.numerics"):
        forced = numerics.numerics_record("true", "cpu")
    assert forced["bf16_setting"] == "true" and forced["bf16"] is True
    assert "bf16=true -> bf16" in caplog.text and "emulated" in caplog.text  # forced without native support


def test_finetune_resolves_auto_and_records_it(no_bf16_cpu):
    net, tok = tiny_cross_encoder(layers=1, d_ff=32)
    queries = {"1": "heat transfer", "2": "wing flutter"}
    docs = {d: f"document {d} about heat and wings" for d in "abcdefgh"}
    pos, pools = [("1", "a"), ("2", "b")], {"1": list("cdefg"), "2": list("cdefh")}
    cfg = finetune.FinetuneConfig(steps=2, groups_per_step=2, group_size=4, warmup_steps=1, max_length=32)
    assert cfg.bf16 == "auto"
    info = finetune.finetune(net, tok, finetune.TrainingData(queries, docs, pos, pools), cfg, progress=False)
    assert info["bf16"] is False and info["numerics"]["bf16_setting"] == "auto"
    assert info["config"]["bf16"] == "auto"


def test_schema_rejects_a_bad_bf16_naming_the_key():
    cfg = yaml.safe_load((REPO / "config" / "ci.yaml").read_text())
    for section in ("finetune", "rerank", "nig"):
        for ok in ("auto", True, False):
            cfg.setdefault(section, {})["bf16"] = ok
            check_config(cfg, REPO / "config" / "schema.yaml")
    cfg["rerank"]["bf16"] = "maybe"
    with pytest.raises(ConfigError, match=r"config error at rerank\.bf16: 'maybe' is not one of"):
        check_config(cfg, REPO / "config" / "schema.yaml")


# --------------------------------------------------------------------------- the head runs in full precision


def test_classifier_runs_in_fp32_under_bf16_autocast():
    net, tok = tiny_cross_encoder()
    assert numerics.keep_head_in_full_precision(net) == ["bert.pooler", "classifier"]
    assert numerics.keep_head_in_full_precision(net) == ["bert.pooler", "classifier"]  # idempotent
    seen = {}
    net.bert.pooler.register_forward_pre_hook(lambda m, args: seen.update(h=args[0]), prepend=True)
    enc = encoding.encode(tok, list(QUERIES.values()), list(DOCS.values())[:4], 64)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = net(**enc).logits
    assert logits.dtype == torch.float32
    hidden = seen["h"]  # the encoder's output, as rounded by the bf16 forward
    with torch.inference_mode():
        reference = net.classifier(net.bert.pooler(hidden.float()))  # no autocast: fp32
    torch.testing.assert_close(logits, reference, rtol=1e-6, atol=1e-7)
    numerics.keep_head_in_full_precision(net, enable=False)  # the check can tell a bf16 head apart
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        bf16_head = net(**enc).logits
    assert bf16_head.dtype == torch.bfloat16
    assert not torch.allclose(bf16_head.float(), reference, rtol=1e-6, atol=1e-7)


def test_fp64_model_stays_fp64():
    net, tok = tiny_cross_encoder(layers=1)
    numerics.keep_head_in_full_precision(net)
    net = net.double()
    enc = encoding.encode(tok, ["heat transfer"], ["heat transfer over a cone"], 32)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert net(**enc).logits.dtype == torch.float64


def test_load_cross_encoder_keeps_the_head_in_fp32():
    net, tok = model.load_cross_encoder(model.PYPI_MINILM, num_labels=1, seed=0)
    assert numerics.keep_head_in_full_precision(net) == ["bert.pooler", "classifier"]
    enc = encoding.encode(tok, ["heat transfer"], ["heat transfer over a cone"], 32)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert net(**enc).logits.dtype == torch.float32


def _top_ties(scores, depth=20):
    top = np.sort(scores)[::-1][:depth]
    return int(np.sum(np.diff(top) == 0))


def test_bf16_scores_with_fp32_head_have_no_more_ties_than_fp32():
    """bf16 logits (8 significant bits) tie within a query's top-20; with the fp32 head they do not."""
    net, tok = tiny_cross_encoder()
    numerics.keep_head_in_full_precision(net)
    words = " ".join(DOCS.values()).split()
    rng = np.random.default_rng(0)
    passages = [" ".join(rng.choice(words, 12)) for _ in range(40)]
    fp32 = bf16 = bf16_logits = 0
    for q in QUERIES.values():
        fp32 += _top_ties(scoring.score_pairs(net, tok, [q] * 40, passages, bf16=False))
        bf16 += _top_ties(scoring.score_pairs(net, tok, [q] * 40, passages, bf16=True))
        numerics.keep_head_in_full_precision(net, enable=False)
        try:
            bf16_logits += _top_ties(scoring.score_pairs(net, tok, [q] * 40, passages, bf16=True))
        finally:
            numerics.keep_head_in_full_precision(net)
    assert bf16 <= fp32
    assert bf16_logits > fp32  # without the fp32 head ties do appear: the test can fail


def test_score_pairs_accepts_auto(monkeypatch):
    net, tok = tiny_cross_encoder(layers=1)
    numerics.keep_head_in_full_precision(net)
    q, p = ["heat transfer"] * 3, list(DOCS.values())[:3]
    monkeypatch.setattr(numerics, "cpu_flags", lambda: {"avx2"})
    assert np.array_equal(scoring.score_pairs(net, tok, q, p, bf16="auto"), scoring.score_pairs(net, tok, q, p, bf16=False))
    monkeypatch.setattr(numerics, "cpu_flags", lambda: {"avx2", "amx_bf16"})
    assert np.array_equal(scoring.score_pairs(net, tok, q, p, bf16="auto"), scoring.score_pairs(net, tok, q, p, bf16=True))
    with pytest.raises(ValueError, match="bf16 setting 'maybe'"):
        scoring.score_pairs(net, tok, q, p, bf16="maybe")
