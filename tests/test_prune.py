import numpy as np
import pytest
import torch

from irneurons.rankers import scoring
from irneurons.rankers import relevance
from irneurons.rankers import encoding
from irneurons.units import hooks as U
from irneurons.rankers.parts import PART_NAMES
from irneurons.study.pruning import Pruning

from .conftest import tiny_cross_encoder


@pytest.fixture(scope="module")
def tiny():
    return tiny_cross_encoder(layers=3, d_ff=48)


def record_inputs(net, modules):
    seen = {}

    def make(i):
        def hook(module, args, kwargs):
            seen[i] = (args[0] if args else kwargs["hidden_states"]).detach().clone()
        return hook

    return seen, [m.register_forward_pre_hook(make(i), with_kwargs=True) for i, m in enumerate(modules)]


def test_zeroed_neurons_are_exactly_zero_only_where_asked(tiny):
    net, tok = tiny
    enc = encoding.encode(tok, ["heat transfer", "wing flutter"], ["laminar flow heat transfer", "flutter of wings"], 32)
    base, handles = record_inputs(net, U.ffn_modules(net))
    with torch.no_grad():
        net(**enc)
    for h in handles:
        h.remove()
    passage = PART_NAMES.index("passage")
    prune = Pruning(net, ffn=[(1, 5), (1, 7), (2, 0)], part=passage)
    with prune:
        prune.set_batch(enc["input_ids"], enc["token_type_ids"], enc["attention_mask"], tok.cls_token_id, tok.sep_token_id)
        seen, handles = record_inputs(net, U.ffn_modules(net))  # registered after the pruning hooks: sees their output
        with torch.no_grad():
            net(**enc)
        for h in handles:
            h.remove()
    parts = prune._parts
    at = parts == passage
    x = seen[1]
    assert torch.all(x[..., 5][at] == 0) and torch.all(x[..., 7][at] == 0)
    assert torch.equal(x[..., 5][~at], base[1][..., 5][~at])  # other tokens untouched
    assert torch.equal(x[..., 6], base[1][..., 6])  # other neurons of the layer untouched (layer 1 input unchanged)
    assert torch.equal(seen[0], base[0])  # layers before the first pruned one are unchanged


def test_heads_zeroed_and_nothing_pruned_is_bit_identical(tiny):
    net, tok = tiny
    qs, ps = ["shells buckling"] * 3, ["thin cylindrical shells", "supersonic flow", "heat"]
    ref = scoring.score_pairs(net, tok, qs, ps)
    with Pruning(net):
        assert np.array_equal(scoring.score_pairs(net, tok, qs, ps), ref)
    d_head = U.layout(net).d_head
    with Pruning(net, heads=[(2, 1)]):
        seen, handles = record_inputs(net, U.head_modules(net))
        pruned = scoring.score_pairs(net, tok, qs, ps)
        for h in handles:
            h.remove()
    assert torch.all(seen[2][..., d_head : 2 * d_head] == 0)
    assert not torch.all(seen[2][..., :d_head] == 0)
    assert not np.allclose(pruned, ref)
    assert np.array_equal(scoring.score_pairs(net, tok, qs, ps), ref)  # hooks gone after the block


def test_pruned_scores_through_the_batched_scorer(tiny):
    from irneurons.study.pruning import pruned_scores

    net, tok = tiny
    qs = ["shells buckling", "heat", "wing flutter at high speed", "boundary layer"]
    ps = ["thin cylindrical shells under load", "supersonic flow", "heat transfer in laminar flow", "flutter"]
    ref = scoring.score_pairs(net, tok, qs, ps, batch_size=3)
    assert np.array_equal(pruned_scores(net, tok, qs, ps, batch_size=3), ref)  # nothing pruned: bit for bit
    units = [(0, u) for u in range(48)] + [(1, u) for u in range(48)] + [(2, u) for u in range(48)]
    cls = PART_NAMES.index("cls")
    # part-restricted pruning of every neuron: equals a manual forward with the CLS token's activations zeroed
    got = pruned_scores(net, tok, qs, ps, ffn=units, part=cls, batch_size=3)
    assert not np.allclose(got, ref)
    manual = []
    for q, p in zip(qs, ps):
        with Pruning(net, ffn=units, part=cls) as pr:
            enc = encoding.encode(tok, [q], [p], 128)
            pr.set_batch(enc["input_ids"], enc["token_type_ids"], enc["attention_mask"], tok.cls_token_id, tok.sep_token_id)
            with torch.no_grad():
                manual.append(relevance.relevance(net(**enc).logits, "auto").item())
    np.testing.assert_allclose(got, manual, rtol=1e-5, atol=1e-6)
    # without part information a part-restricted forward refuses to run instead of pruning silently
    with pytest.raises(RuntimeError, match="set_batch"):
        with Pruning(net, ffn=units, part=cls):
            scoring.score_pairs(net, tok, qs, ps)


def test_many_sets_in_one_job_equal_separate_jobs(tiny):
    """pruned_scores_many (one tokenisation, several masks) gives exactly pruned_scores of each set."""
    from irneurons.study.pruning import pruned_scores, pruned_scores_many

    net, tok = tiny
    rng = np.random.default_rng(0)
    queries = [f"query {i} heat" for i in range(9)]
    passages = [" ".join(["flow"] * int(n)) + " wing" for n in rng.integers(1, 12, 9)]
    sets = [{"ffn": [(0, 1), (2, 3)]}, {"ffn": [(1, 5)]}, {"heads": [(0, 1)]}, {}]
    many = pruned_scores_many(net, tok, queries, passages, sets, max_length=32, batch_size=4)
    for units, got in zip(sets, many):
        one = pruned_scores(net, tok, queries, passages, ffn=units.get("ffn", ()), heads=units.get("heads", ()),
                            max_length=32, batch_size=4)
        np.testing.assert_array_equal(got, one)
    assert not np.array_equal(many[0], many[3]) and not np.array_equal(many[2], many[3])
    passage = PART_NAMES.index("passage")
    part_many = pruned_scores_many(net, tok, queries, passages, sets[:2], part=passage, max_length=32, batch_size=4)
    part_one = pruned_scores(net, tok, queries, passages, ffn=sets[1]["ffn"], part=passage, max_length=32, batch_size=4)
    np.testing.assert_array_equal(part_many[1], part_one)


JOB = """
import runpy, sys

class NS:
    def __init__(self, **kw):
        self.__dict__.update(kw)
    def keys(self):
        return self.__dict__.keys()

d = sys.argv[1]
snakemake = NS(
    input=NS(scores=f"{d}/scores.parquet", queries=f"{d}/queries.parquet", docs=f"{d}/docs.parquet",
             qrels=f"{d}/qrels.parquet", model=f"{d}/model.json", units=f"{d}/set.json"),
    output=NS(result=f"{d}/result.json"), log=[f"{d}/job.log"], threads=1, config={},
    params=NS(rerank={}, depth=2, eval_opts={}, seed=0),
    wildcards=NS(dataset="tiny", target="ffn", scheme="tiny", strategy="nig_top", fraction="0.01"))
runpy.run_path(sys.argv[2], init_globals={"snakemake": snakemake}, run_name="__main__")
"""


def test_the_prune_job_stops_on_a_hand_edited_set_with_one_line(tmp_path):
    """A set file edited by hand (a layer the model lacks): the job fails before scoring, with the UnitError's
    line on the job's stderr (snakemake's error output) and the traceback in the job's log."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    import pandas as pd

    from irneurons.rankers import loading

    net, tok = tiny_cross_encoder(layers=2, d_ff=16)
    net.save_pretrained(tmp_path / "hf")
    tok.save_pretrained(tmp_path / "hf")
    loading.write_model_ref(tmp_path / "model.json", str(tmp_path / "hf"), {"max_length": 32})
    pd.DataFrame({"qid": ["1", "1"], "doc_id": ["a", "b"], "rank": [1, 2]}).to_parquet(tmp_path / "scores.parquet")
    pd.DataFrame({"qid": ["1"], "text": ["wing flutter"]}).to_parquet(tmp_path / "queries.parquet")
    pd.DataFrame({"doc_id": ["a", "b"], "text": ["flutter of wings", "heat"]}).to_parquet(tmp_path / "docs.parquet")
    pd.DataFrame({"qid": ["1"], "doc_id": ["a"], "gain": [1]}).to_parquet(tmp_path / "qrels.parquet")
    (tmp_path / "set.json").write_text(json.dumps({"unit_type": "ffn", "sets": [[[0, 3], [1, 15]], [[2, 1]]]}))
    (tmp_path / "job.py").write_text(JOB)
    script = Path(__file__).resolve().parents[1] / "scripts" / "prune.py"
    proc = subprocess.run([sys.executable, str(tmp_path / "job.py"), str(tmp_path), str(script)],
                          capture_output=True, text=True, timeout=300)
    line = f"unit set {tmp_path / 'set.json'}: unit ffn:2:1: layer 2 out of range, the model has layers 0-1"
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"irneurons: error: {line}"]
    log = (tmp_path / "job.log").read_text()
    assert log.rstrip().endswith(f"irneurons.errors.UnitError: {line}") and "Traceback" in log
    assert not (tmp_path / "result.json").exists()
    (tmp_path / "set.json").write_text(json.dumps({"unit_type": "ffn", "sets": [[[1, 15], [0, 3]], [[0, 1], [1, 2]]]}))
    proc = subprocess.run([sys.executable, str(tmp_path / "job.py"), str(tmp_path), str(script)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (tmp_path / "job.log").read_text()[-2000:]
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["n_sets"] == 2 and result["count"] == 2 and result["pairs"] == 2
