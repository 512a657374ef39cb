"""Unit sets as users hand them over: unit ids, (type, layer, unit) triples, or a saved set JSON.

A unit id is ``ffn:<layer>:<unit>`` (an FFN neuron) or ``head:<layer>:<head>``. A saved set is what the
workflow writes under ``results/<name>/sets/<unit_type>/<scheme>/<strategy>/<fraction>.json``: its
``unit_type`` and ``sets``, a list of sets (random strategies hold several), each a list of [layer, unit].
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

UNIT_TYPES = ("ffn", "head")


def unit_id(unit_type: str, layer: int, unit: int) -> str:
    """``ffn:3:117`` / ``head:2:5``."""
    return f"{unit_type}:{int(layer)}:{int(unit)}"


def parse_unit_id(text: str) -> tuple[str, int, int]:
    """(unit_type, layer, unit) of a unit id; ``heads`` is accepted for ``head``."""
    parts = str(text).strip().split(":")
    kind = parts[0].rstrip("s") if parts and parts[0] in ("heads", "head") else parts[0] if parts else ""
    if len(parts) != 3 or kind not in UNIT_TYPES or not parts[1].isdigit() or not parts[2].isdigit():
        raise ValueError(f"unit id {text!r} is not ffn:<layer>:<unit> or head:<layer>:<head>")
    return kind, int(parts[1]), int(parts[2])


@dataclass
class UnitSet:
    """FFN neurons and heads, each as sorted (layer, index) pairs; ``source`` says where the set came from."""

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

    @classmethod
    def parse(cls, units, index: int = 0) -> "UnitSet":
        """A :class:`UnitSet` from a saved set (path or its dict; ``index`` picks one of several sets),
        ``{"ffn": [[l, u], ...], "heads": [[l, h], ...]}``, or an iterable of unit ids / (type, layer, unit)."""
        if isinstance(units, UnitSet):
            return units
        if isinstance(units, (str, os.PathLike)) and str(units).endswith(".json"):
            path = Path(units)
            if not path.is_file():
                raise ValueError(f"unit set {str(path)!r}: no such file")
            try:
                record = json.loads(path.read_text())
            except json.JSONDecodeError as err:
                raise ValueError(f"unit set {str(path)!r}: not JSON ({err.msg}, line {err.lineno})") from None
            out = cls.parse(record, index)
            out.source = str(path)
            return out
        if isinstance(units, dict):
            if "sets" in units:
                sets, kind = units["sets"], units.get("unit_type", "ffn")
                if not 0 <= index < len(sets):
                    raise ValueError(f"unit set index {index} out of range: the file holds {len(sets)} set(s)")
                pairs = sorted((int(l), int(u)) for l, u in sets[index])
                return cls(ffn=pairs) if kind == "ffn" else cls(heads=pairs)
            return cls(sorted((int(l), int(u)) for l, u in units.get("ffn", ())),
                       sorted((int(l), int(h)) for l, h in units.get("heads", units.get("head", ()))))
        if isinstance(units, str):
            units = [u for u in units.replace(",", " ").split() if u]
        ffn, heads = [], []
        for u in units:
            kind, layer, idx = parse_unit_id(u) if isinstance(u, str) else (str(u[0]).rstrip("s"), int(u[1]), int(u[2]))
            if kind not in UNIT_TYPES:
                raise ValueError(f"unit {u!r}: type must be ffn or head")
            (ffn if kind == "ffn" else heads).append((layer, idx))
        return cls(sorted(set(ffn)), sorted(set(heads)))
