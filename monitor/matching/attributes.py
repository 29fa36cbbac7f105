"""What a product title says beyond its words: quantities with units, pack counts, colours and
model codes, compared between our product and a competitor's page.

Two titles conflict on an attribute when both state it and neither's values contain the other's
(`256GB` vs `512GB`, `black` vs `white`, `XM4` vs `XM5`); a title that leaves it out agrees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

# unit -> (dimension, factor to the dimension's base unit)
_UNITS: dict[str, tuple[str, Decimal]] = {
    "ml": ("volume", Decimal(1)), "cl": ("volume", Decimal(10)), "l": ("volume", Decimal(1000)),
    "ltr": ("volume", Decimal(1000)), "litre": ("volume", Decimal(1000)), "liter": ("volume", Decimal(1000)),
    "mg": ("mass", Decimal("0.001")), "g": ("mass", Decimal(1)), "gr": ("mass", Decimal(1)),
    "kg": ("mass", Decimal(1000)), "oz": ("mass", Decimal("28.3495")), "lb": ("mass", Decimal("453.592")),
    "lbs": ("mass", Decimal("453.592")),
    "mm": ("length", Decimal(1)), "cm": ("length", Decimal(10)), "m": ("length", Decimal(1000)),
    "in": ("length", Decimal("25.4")), "inch": ("length", Decimal("25.4")), '"': ("length", Decimal("25.4")),
    "mb": ("storage", Decimal("0.001")), "gb": ("storage", Decimal(1)), "tb": ("storage", Decimal(1000)),
    "w": ("power", Decimal(1)), "kw": ("power", Decimal(1000)), "v": ("voltage", Decimal(1)),
    "mah": ("charge", Decimal(1)), "wh": ("energy", Decimal(1)), "hz": ("frequency", Decimal(1)),
    "mhz": ("frequency", Decimal(1_000_000)), "ghz": ("frequency", Decimal(1_000_000_000)),
    "mp": ("resolution", Decimal(1)), "rpm": ("speed", Decimal(1)),
}  # fmt: skip
_UNIT_PATTERN = "|".join(sorted((re.escape(u) for u in _UNITS), key=len, reverse=True))
_QUANTITY = re.compile(rf"(?<![\w.,])(\d+(?:[.,]\d+)?)\s*({_UNIT_PATTERN})(?![a-z])", re.I)
_PACK = re.compile(
    r"(?:pack\s+of|set\s+of|box\s+of|(?<![\w.])x)\s*(\d{1,4})\b"
    r"|\b(\d{1,4})\s*(?:-\s*)?(?:pack|pk|pcs|pieces|piece|count|ct|stk|x(?=\s|$))\b",
    re.I,
)
_COLOURS = {
    "black": "black", "white": "white", "silver": "silver", "grey": "grey", "gray": "grey",
    "graphite": "grey", "space grey": "grey", "space gray": "grey", "red": "red", "blue": "blue",
    "navy": "blue", "green": "green", "yellow": "yellow", "pink": "pink", "purple": "purple",
    "violet": "purple", "gold": "gold", "rose gold": "rose gold", "orange": "orange", "brown": "brown",
    "beige": "beige", "cream": "beige", "turquoise": "turquoise", "midnight": "black", "schwarz": "black",
    "weiss": "white", "weiß": "white", "rot": "red", "blau": "blue", "grün": "green", "noir": "black",
    "blanc": "white", "rouge": "red", "bleu": "blue",
}  # fmt: skip
_COLOUR = re.compile(r"\b(" + "|".join(sorted((re.escape(c) for c in _COLOURS), key=len, reverse=True)) + r")\b", re.I)
# A model code mixes letters and digits (WH-1000XM4, SM-G991B, KD55X80J), at least 3 characters.
_CODE = re.compile(r"\b(?=[\w-]*\d)(?=[\w-]*[a-z])[a-z0-9]+(?:[-/][a-z0-9]+)*\b", re.I)


@dataclass(frozen=True, slots=True)
class Attributes:
    quantities: dict[str, frozenset[Decimal]] = field(default_factory=dict)
    pack: frozenset[int] = frozenset()
    colours: frozenset[str] = frozenset()
    codes: frozenset[str] = frozenset()


def _number(text: str) -> Decimal | None:
    try:
        return Decimal(text.replace(",", "."))
    except InvalidOperation:
        return None


def title_attributes(title: str) -> Attributes:
    """The attributes `title` states."""
    text = title.casefold()
    quantities: dict[str, set[Decimal]] = {}
    unit_spans: list[tuple[int, int]] = []
    for match in _QUANTITY.finditer(text):
        if re.fullmatch(r"[2-6]g", match.group(0)):
            continue  # 5G is a mobile network, not five grams
        number = _number(match.group(1))
        unit = _UNITS.get(match.group(2).lower())
        if number is None or unit is None:
            continue
        dimension, factor = unit
        quantities.setdefault(dimension, set()).add((number * factor).normalize())
        unit_spans.append(match.span())
    pack = {int(m.group(1) or m.group(2)) for m in _PACK.finditer(text)}
    pack.discard(1)
    colours = {_COLOURS[m.group(1).lower()] for m in _COLOUR.finditer(text)}
    codes = set()
    for match in _CODE.finditer(text):
        if any(start <= match.start() < end for start, end in unit_spans):
            continue
        code = re.sub(r"[^0-9a-z]", "", match.group(0))
        if len(code) >= 3 and not _QUANTITY.fullmatch(match.group(0)) and not re.fullmatch(r"\d+x|x\d+", code):
            codes.add(code.upper())
    return Attributes(
        {k: frozenset(v) for k, v in quantities.items()}, frozenset(pack), frozenset(colours), frozenset(codes)
    )


def _disagree(a: frozenset[object], b: frozenset[object]) -> bool:
    return bool(a) and bool(b) and not (a <= b or b <= a)


def conflicts(ours: Attributes, theirs: Attributes) -> list[str]:
    """What the two titles state differently, e.g. ["storage: 256 vs 512", "colour: black vs white"]."""
    found: list[str] = []
    for dimension in sorted(ours.quantities.keys() & theirs.quantities.keys()):
        a, b = ours.quantities[dimension], theirs.quantities[dimension]
        if _disagree(a, b):  # type: ignore[arg-type]
            found.append(f"{dimension}: {_show(a)} vs {_show(b)}")
    if _disagree(ours.pack, theirs.pack):  # type: ignore[arg-type]
        found.append(f"pack: {_show(ours.pack)} vs {_show(theirs.pack)}")
    if _disagree(ours.colours, theirs.colours):  # type: ignore[arg-type]
        found.append(f"colour: {_show(ours.colours)} vs {_show(theirs.colours)}")
    if ours.codes and theirs.codes and not ours.codes & theirs.codes:
        found.append(f"model code: {_show(ours.codes)} vs {_show(theirs.codes)}")
    return found


def _show(values: frozenset[object]) -> str:
    return "/".join(sorted(f"{v:f}" if isinstance(v, Decimal) else str(v) for v in values))
