"""Unit sets at the front door: malformed ids / files and units the model does not have are one-line UnitErrors."""

import json

import numpy as np
import pytest
import torch

from irneurons import testing
from irneurons.errors import IrneuronsError, UnitError
from irneurons.study.pruning import Pruning, pruned
from irneurons.units.hooks import layout
from irneurons.units.unitsets import UnitSet, parse_unit_id


@pytest.fixture(scope="module")
def bert():
    return testing.build("bert", layers=3, d_ff=24, heads=4)  # layers 0-2, FFN neurons 0-23, heads 0-3


def one_line(err) -> str:
    text = str(err.value)
    assert "\n" not in text and isinstance(err.value, IrneuronsError) and isinstance(err.value, ValueError)
    return text


@pytest.mark.parametrize("ids, message", [
    ("ffn:3:1", "unit ffn:3:1: layer 3 out of range, the model has layers 0-2"),
    ("ffn:0:24", "unit ffn:0:24: neuron 24 out of range, layer 0 has FFN neurons 0-23"),
    ("head:2:4", "unit head:2:4: head 4 out of range, layer 2 has heads 0-3"),
    ("head:7:0", "unit head:7:0: layer 7 out of range, the model has layers 0-2"),
    ("ffn:0:1,ffn:0:99999,head:9:9", "unit ffn:0:99999: neuron 99999 out of range, layer 0 has FFN neurons 0-23 "
                                     "(and 1 more unit(s) out of range)"),
])
def test_units_beyond_the_model_name_the_unit_and_the_valid_range(bert, ids, message):
    with pytest.raises(UnitError) as err:
        UnitSet.parse(ids).check(bert)
    assert one_line(err) == message


def test_the_last_unit_of_every_range_is_valid(bert):
    edge = UnitSet.parse("ffn:2:23,head:2:3,ffn:0:0,head:0:0")
    assert edge.check(bert) is edge and edge.check(layout(bert)) is edge
    assert edge.ffn == [(0, 0), (2, 23)] and edge.heads == [(0, 0), (2, 3)]


def test_layers_are_counted_over_every_stack():
    t5 = testing.build("t5", layers=2)  # 2 encoder + 2 decoder blocks: layers 0-3, not the config's 2
    UnitSet.parse("ffn:3:0,head:3:3").check(t5)
    with pytest.raises(UnitError) as err:
        UnitSet.parse("head:4:0").check(t5)
    assert one_line(err) == "unit head:4:0: layer 4 out of range, the model has layers 0-3"


@pytest.mark.parametrize("units, message", [
    ("neuron:0:1", "unit neuron:0:1: unknown unit type 'neuron', valid: ffn, head"),
    ("ffn:1", "unit id 'ffn:1' is not ffn:<layer>:<unit> or head:<layer>:<head>"),
    ("ffn:-1:2", "unit id 'ffn:-1:2' is not ffn:<layer>:<unit> or head:<layer>:<head>"),
    ([("attn", 0, 1)], "unit ('attn', 0, 1): unknown unit type 'attn', valid: ffn, head"),
    ({"unit_type": "neurons", "sets": [[[0, 1]]]},
     "unit set, unit_type: unknown unit type 'neurons', valid: ffn, head"),
    ({"unit_type": "ffn", "sets": [[[0, "x"]]]}, "unit set: entry [0, 'x'] is not a [layer, unit] pair of integers"),
    ({"ffn": [[0, 1]], "attention": [[0, 1]]}, "unit set: unknown unit type 'attention', valid: ffn, head"),
])
def test_malformed_sets_are_one_line(units, message):
    with pytest.raises(UnitError) as err:
        UnitSet.parse(units)
    assert one_line(err) == message


def test_a_saved_set_file_names_the_file(bert, tmp_path):
    path = tmp_path / "0.01.json"
    path.write_text(json.dumps({"unit_type": "head", "sets": [[[1, 2], [0, 3]], [[0, 1], [2, 4]]]}))
    sets = UnitSet.parse_all(path)
    assert [s.heads for s in sets] == [[(0, 3), (1, 2)], [(0, 1), (2, 4)]] and {s.source for s in sets} == {str(path)}
    assert UnitSet.parse(path, 0).check(bert).heads == [(0, 3), (1, 2)]
    with pytest.raises(UnitError) as err:
        UnitSet.parse(path, 1).check(bert)
    assert one_line(err) == f"unit set {path}: unit head:2:4: head 4 out of range, layer 2 has heads 0-3"
    with pytest.raises(UnitError) as err:
        UnitSet.parse(path, 2)
    assert one_line(err) == f"unit set {path}: set index 2 out of range, the file holds 2 set(s) (index 0-1)"
    path.write_text("{not json")
    with pytest.raises(UnitError, match=r"^unit set .*0\.01\.json: not JSON \(.*line 1\)$"):
        UnitSet.parse(path)
    with pytest.raises(UnitError, match=r"no such file$"):
        UnitSet.parse(tmp_path / "gone.json")


def test_pruned_checks_before_any_hook(bert):
    ffn_mods = [m for m in bert.modules() if isinstance(m, torch.nn.Linear)]
    hooks_before = sum(len(m._forward_pre_hooks) for m in ffn_mods)
    for units in ("ffn:3:1", UnitSet(ffn=[(0, 24)]), {"heads": [[0, 4]]}):
        with pytest.raises(UnitError, match=r"^unit (ffn:3:1|ffn:0:24|head:0:4): "):
            with pruned(bert, units):
                pass
    with pytest.raises(UnitError, match=r"^unit ffn:0:-1: neuron -1 out of range"):  # negative: no wrap-around
        Pruning(bert, ffn=[(0, -1)])
    with pytest.raises(UnitError, match=r"^unit head:5:0: layer 5 out of range"):
        Pruning(bert, heads=[(5, 0)])
    assert sum(len(m._forward_pre_hooks) for m in ffn_mods) == hooks_before
    import irneurons  # the front door: the same one-line errors

    with pytest.raises(irneurons.IrneuronsError, match=r"^unit ffn:0:24: neuron 24 out of range"):
        with irneurons.pruned(bert, irneurons.UnitSet(ffn=[(0, 24)])):
            pass
    with pruned(bert, "ffn:2:23,head:2:3") as pruning:
        assert dict(pruning.ffn) == {2: [23]} and dict(pruning.heads) == {2: [3]}


def test_the_workflow_reading_of_a_set_file_gives_the_same_scores():
    """The prune job reads a set file through UnitSet.parse_all (sorted pairs): the scores of the file's order."""
    tiny = testing.tiny("bert")
    record = {"unit_type": "ffn", "sets": [[[1, 5], [0, 3], [1, 2]]]}
    (units,) = UnitSet.parse_all(record)
    assert units.as_dict() == {"ffn": [(0, 3), (1, 2), (1, 5)], "heads": []}
    assert parse_unit_id("heads:1:2") == ("head", 1, 2)
    with Pruning(tiny.model, ffn=[(1, 5), (0, 3), (1, 2)]):
        as_file = _score(tiny)
    with Pruning(tiny.model, **units.as_dict()):
        as_parsed = _score(tiny)
    assert np.array_equal(as_file, as_parsed) and not np.allclose(as_file, _score(tiny))


def _score(tiny):
    with torch.no_grad():
        out = tiny.model(input_ids=tiny.input_ids[:, 0], attention_mask=tiny.attention_mask[:, 0],
                         token_type_ids=tiny.token_type_ids[:, 0])
    return out.logits.numpy().copy()
