"""Unit sets as users hand them over: unit ids, (type, layer, unit) triples, or a saved set JSON.

A unit id is ``ffn:<layer>:<unit>`` (an FFN neuron) or ``head:<layer>:<head>``. A saved set is what the
workflow writes under ``results/<name>/sets/<unit_type>/<scheme>/<strategy>/<fraction>.json``: its
``unit_type`` and ``sets``, a list of sets (random strategies hold several), each a list of [layer, unit].

Every problem is a one-line :class:`irneurons.errors.UnitError` naming the unit (or file) and what is valid:
malformed ids and files when a set is parsed, units the model does not have (layer beyond its depth, neuron
beyond its FFN width, head beyond its head count) when it is checked against a model (:meth:`UnitSet.check`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from irneurons.errors import UnitError

UNIT_TYPES = ("ffn", "head")


def unit_id(unit_type: str, layer: int, unit: int) -> str:
    """``ffn:3:117`` / ``head:2:5``."""
    return f"{unit_type}:{int(layer)}:{int(unit)}"


def _unit_type(kind, what: str) -> str:
    """``ffn`` or ``head`` (``heads`` / ``ffns`` accepted) of ``kind``; else a :class:`UnitError` naming ``what``."""
    name = str(kind).strip()
    name = name[:-1] if name in ("heads", "ffns") else name
    if name not in UNIT_TYPES:
        raise UnitError(f"{what}: unknown unit type {str(kind)!r}, valid: ffn, head")
    return name


def parse_unit_id(text: str) -> tuple[str, int, int]:
    """(unit_type, layer, unit) of a unit id; ``heads`` is accepted for ``head``.

    Examples:
        >>> parse_unit_id("head:2:5")
        ('head', 2, 5)
    """
    parts = str(text).strip().split(":")
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        raise UnitError(f"unit id {text!r} is not ffn:<layer>:<unit> or head:<layer>:<head>")
    return _unit_type(parts[0], f"unit {str(text).strip()}"), int(parts[1]), int(parts[2])


def _pairs(members, what: str) -> list[tuple[int, int]]:
    """Sorted (layer, unit) pairs of ``members`` ([[layer, unit], ...]); a :class:`UnitError` if one is not."""
    out = []
    for m in members:
        try:
            layer, unit = m
            out.append((int(layer), int(unit)))
        except (TypeError, ValueError):
            raise UnitError(f"{what}: entry {m!r} is not a [layer, unit] pair of integers") from None
    return sorted(out)


@dataclass
class UnitSet:
    """FFN neurons and heads, each as sorted (layer, index) pairs; ``source`` says where the set came from.

    Examples:
        >>> s = UnitSet.parse("ffn:3:117,head:2:5")
        >>> s.ids(), len(s)
        (['ffn:3:117', 'head:2:5'], 2)
    """

    ffn: list[tuple[int, int]] = field(default_factory=list)
    heads: list[tuple[int, int]] = field(default_factory=list)
    source: str = ""

    def __len__(self) -> int:
        return len(self.ffn) + len(self.heads)

    def ids(self) -> list[str]:
        return [unit_id("ffn", l, u) for l, u in self.ffn] + [unit_id("head", l, h) for l, h in self.heads]

    def as_dict(self) -> dict:
        """``{"ffn": [...], "heads": [...]}`` as :func:`irneurons.study.pruning.pruned_scores_many` takes it."""
        return {"ffn": list(self.ffn), "heads": list(self.heads)}

    def check(self, model) -> UnitSet:
        """This set, after checking that ``model`` has every unit; else a one-line :class:`UnitError`.

        Args:
            model: a re-ranker (its :func:`irneurons.units.hooks.layout` is read) or a
                :class:`irneurons.units.hooks.UnitLayout`.

        Returns:
            ``self`` (so that ``UnitSet.parse(units).check(model)`` chains).

        Examples:
            >>> UnitSet.parse("ffn:99:1").check(model)  # doctest: +SKIP
            irneurons.errors.UnitError: unit ffn:99:1: layer 99 out of range, the model has layers 0-5
        """
        lay = model
        if not hasattr(model, "n_layers"):
            from irneurons.units.hooks import layout

            lay = layout(model)
        where = f"unit set {self.source}: " if self.source else ""
        bad = [(t, l, u) for t, members, width in (("ffn", self.ffn, lay.d_ff), ("head", self.heads, lay.n_heads))
               for l, u in members if not (0 <= l < lay.n_layers and 0 <= u < width)]
        if not bad:
            return self
        kind, layer, unit = bad[0]
        more = f" (and {len(bad) - 1} more unit(s) out of range)" if len(bad) > 1 else ""
        if not 0 <= layer < lay.n_layers:
            problem = f"layer {layer} out of range, the model has layers 0-{lay.n_layers - 1}"
        elif kind == "ffn":
            problem = f"neuron {unit} out of range, layer {layer} has FFN neurons 0-{lay.d_ff - 1}"
        else:
            problem = f"head {unit} out of range, layer {layer} has heads 0-{lay.n_heads - 1}"
        raise UnitError(f"{where}unit {unit_id(kind, layer, unit)}: {problem}{more}")

    @classmethod
    def parse(cls, units, index: int = 0) -> UnitSet:
        """A :class:`UnitSet` from a saved set (path or its dict; ``index`` picks one of several sets),
        ``{"ffn": [[l, u], ...], "heads": [[l, h], ...]}``, or an iterable of unit ids / (type, layer, unit).

        Malformed input raises a one-line :class:`UnitError`; whether a model has the units is
        :meth:`check`'s business.

        Args:
            units: a set JSON path or its dict, a :class:`UnitSet`, ``"ffn:3:117,head:2:5"``, or an iterable of
                unit ids / ``("ffn", 3, 117)`` triples.
            index: which set of a multi-set file (random strategies hold several).

        Returns:
            :class:`UnitSet` (pairs sorted; ids and triples also deduplicated).
        """
        if isinstance(units, UnitSet):
            return units
        if isinstance(units, (str, os.PathLike)) and str(units).endswith(".json"):
            return cls._pick(cls.parse_all(units), index, f"unit set {units}")
        if isinstance(units, dict):
            return cls._from_record(units, index, "unit set")
        if isinstance(units, str):
            units = [u for u in units.replace(",", " ").split() if u]
        ffn, heads = [], []
        for u in units:
            if isinstance(u, str):
                kind, layer, idx = parse_unit_id(u)
            else:
                try:
                    kind, layer, idx = u
                    layer, idx = int(layer), int(idx)
                except (TypeError, ValueError):
                    raise UnitError(f"unit {u!r} is not a unit id or a (type, layer, unit) triple") from None
                kind = _unit_type(kind, f"unit {u!r}")
            (ffn if kind == "ffn" else heads).append((layer, idx))
        return cls(sorted(set(ffn)), sorted(set(heads)))

    @classmethod
    def parse_all(cls, units) -> list[UnitSet]:
        """Every set of a saved set (path or its dict), in file order; one :class:`UnitSet` for anything else.

        Args:
            units: a ``results/<name>/sets/.../<fraction>.json`` path, its dict, or what :meth:`parse` takes.

        Returns:
            list of :class:`UnitSet`, one per set of the file (``source``: the path, when read from a file).
        """
        if isinstance(units, (str, os.PathLike)) and str(units).endswith(".json"):
            path = Path(units)
            what = f"unit set {path}"
            if not path.is_file():
                raise UnitError(f"{what}: no such file")
            try:
                record = json.loads(path.read_text())
            except json.JSONDecodeError as err:
                raise UnitError(f"{what}: not JSON ({err.msg}, line {err.lineno})") from None
            if not isinstance(record, dict):
                raise UnitError(f"{what}: not a set (a JSON object with unit_type and sets, or ffn / heads)")
            n_sets = len(record["sets"]) if isinstance(record.get("sets"), list) else 1
            out = [cls._from_record(record, i, what) for i in range(n_sets)]
            for s in out:
                s.source = str(path)
            return out
        if isinstance(units, dict) and isinstance(units.get("sets"), list):
            return [cls._from_record(units, i, "unit set") for i in range(len(units["sets"]))]
        return [cls.parse(units)]

    @staticmethod
    def _pick(sets: list[UnitSet], index: int, what: str) -> UnitSet:
        if not 0 <= index < len(sets):
            raise UnitError(f"{what}: set index {index} out of range, the file holds {len(sets)} set(s)"
                            + (f" (index 0-{len(sets) - 1})" if sets else ""))
        return sets[index]

    @classmethod
    def _from_record(cls, record: dict, index: int, what: str) -> UnitSet:
        """Set ``index`` of a saved-set dict, or the set of an ``{"ffn": ..., "heads": ...}`` dict."""
        if "sets" in record:
            sets = record["sets"]
            if not isinstance(sets, list):
                raise UnitError(f"{what}: 'sets' is not a list of sets of [layer, unit] pairs")
            if not 0 <= index < len(sets):
                raise UnitError(f"{what}: set index {index} out of range, the file holds {len(sets)} set(s)"
                                + (f" (index 0-{len(sets) - 1})" if sets else ""))
            kind = _unit_type(record.get("unit_type", "ffn"), f"{what}, unit_type")
            pairs = _pairs(sets[index], what)
            return cls(ffn=pairs) if kind == "ffn" else cls(heads=pairs)
        unknown = sorted(set(record) - {"ffn", "heads", "head"})
        if unknown:
            _unit_type(unknown[0], what)
        return cls(_pairs(record.get("ffn", ()), what), _pairs(record.get("heads", record.get("head", ())), what))
