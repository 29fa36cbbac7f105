"""Reading and writing plain decimal amounts (CSV cells, JSON strings); never floats."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

CENTS = Decimal("0.01")


def parse_amount(text: str) -> Decimal:
    """Read a plain amount such as `19.99` or `1299`; raise ValueError naming what was wrong.

    Only '.' is a decimal separator here: this is for files and options we define, not for
    scraped page text (see monitor.scrape.price for that).
    """
    cleaned = text.strip()
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"not a number: {text!r} (write amounts like 19.99)") from None
    if not value.is_finite():
        raise ValueError(f"not a finite number: {text!r}")
    if value.as_tuple().exponent < -4:  # type: ignore[operator]
        raise ValueError(f"more than 4 decimal places: {text!r}")
    return value


def format_amount(value: Decimal | None) -> str | None:
    """`Decimal('19.9900')` -> `'19.99'`, `Decimal('12800')` -> `'12800.00'`: at least two places,
    more only when they carry digits."""
    if value is None:
        return None
    if value == value.quantize(CENTS):
        return str(value.quantize(CENTS))
    return str(value.normalize())
