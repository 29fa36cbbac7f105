"""JSON islands: the product data a page keeps in a script element (``__NEXT_DATA__``,
``window.__INITIAL_STATE__ = {...};``, Shopify's product JSON), read with the competitor's
JMESPath expressions. It returns raw values; ``extract`` turns them into prices and stock."""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import chompjs
import jmespath
from jmespath.exceptions import JMESPathError
from selectolax.lexbor import LexborHTMLParser, SelectolaxError

logger = logging.getLogger(__name__)

__all__ = ["Island", "read_island", "validate_expression"]


@dataclass(slots=True)
class Island:
    prices: list[Any] = field(default_factory=list)  # scalars found by the price expression
    currency: Any = None
    in_stock: Any = None
    note: str = ""  # why nothing was read, for the message


@functools.lru_cache(maxsize=256)
def _compiled(expression: str) -> Any:
    return jmespath.compile(expression)


def validate_expression(expression: str) -> str | None:
    """An error message if ``expression`` is not JMESPath, else None."""
    if not expression or not expression.strip():
        return "empty JMESPath expression"
    try:
        _compiled(expression)
    except JMESPathError as exc:
        return f"invalid JMESPath expression {expression!r}: {str(exc).splitlines()[0]}"
    return None


def _load(text: str) -> Any:
    try:
        return json.loads(text, parse_float=Decimal, strict=False)
    except ValueError:
        pass
    # "window.__INITIAL_STATE__ = {...};" and other JavaScript around the object
    try:
        return chompjs.parse_js_object(text, loader_kwargs={"parse_float": Decimal, "strict": False})
    except Exception:  # chompjs raises several types for hopeless input
        return None


def _scalars(value: Any) -> list[Any]:
    if isinstance(value, list):
        return [v for item in value for v in _scalars(item)]
    if value is None or isinstance(value, dict):
        return []
    return [value]


def _search(expression: str | None, data: Any) -> Any:
    if not expression:
        return None
    try:
        return _compiled(expression).search(data)
    except JMESPathError as exc:  # a type error at run time, e.g. a function on the wrong type
        logger.debug("JMESPath %r failed: %s", expression, exc)
        return None


def read_island(
    tree: LexborHTMLParser,
    script: str,
    price: str | None,
    currency: str | None,
    in_stock: str | None,
) -> Island:
    """What the expressions find in the first element matching ``script`` that holds parseable data."""
    try:
        nodes = tree.css(script)
    except SelectolaxError:
        return Island(note=f"json_script {script!r} is not a valid CSS selector")
    if not nodes:
        return Island(note=f"json_script {script!r} matched nothing")
    first: Island | None = None
    for node in nodes:
        data = _load(node.text(deep=True) or "")
        if data is None:
            continue
        island = Island(
            prices=_scalars(_search(price, data)),
            currency=_search(currency, data),
            in_stock=_search(in_stock, data),
        )
        if island.prices or not price:
            return island  # the first matching script the price expression finds something in
        first = first or island
    if first is not None:
        first.note = f"json_price {price!r} found nothing in {script!r}"
        return first
    return Island(note=f"json_script {script!r} holds no JSON or JavaScript object")
