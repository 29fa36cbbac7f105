"""Reading and writing plain decimal amounts (CSV cells, JSON strings); never floats.

It also owns the one range of money pricemon accepts anywhere (extraction, imports, strategies'
results, the API): what the store's `NUMERIC(14,4)` columns hold, zero and up.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

CENTS = Decimal("0.01")

#: The store keeps money as NUMERIC(14, 4): ten digits before the point and four after.
MONEY_PLACES = 4
MONEY_MAX = Decimal("9999999999.9999")


class MoneyRangeError(ValueError):
    """A value that is not an amount pricemon can keep: not finite, negative, too large or too precise."""


def check_money(value: Decimal, *, what: str = "amount") -> Decimal:
    """Return `value` if the store can hold it exactly, else raise MoneyRangeError saying why.

    The range is checked before any arithmetic on the value, so a hostile `1e308` or a
    400-digit string never reaches a quantize() that raises InvalidOperation.
    """
    if not value.is_finite():
        raise MoneyRangeError(f"{what} is not a finite number: {value}")
    if value < 0:
        raise MoneyRangeError(f"{what} is negative: {value}")
    if value > MONEY_MAX:
        raise MoneyRangeError(f"{what} is above the largest amount pricemon keeps ({MONEY_MAX}): {_short(value)}")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MONEY_PLACES:
        # More than four places: exact only if the extra digits are zeros.
        rounded = value.quantize(Decimal(1).scaleb(-MONEY_PLACES))
        if rounded != value:
            raise MoneyRangeError(f"{what} has more than {MONEY_PLACES} decimal places: {_short(value)}")
        return rounded
    return value


def is_money(value: Decimal) -> bool:
    try:
        check_money(value)
    except MoneyRangeError:
        return False
    return True


def _short(value: Decimal) -> str:
    text = str(value)
    return text if len(text) <= 32 else f"{text[:16]}...({len(text)} characters)"


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
    if "e" in cleaned.lower():
        raise ValueError(f"exponent notation is not an amount: {text!r} (write amounts like 19.99)")
    if value.as_tuple().exponent < -MONEY_PLACES:  # type: ignore[operator]
        raise ValueError(f"more than {MONEY_PLACES} decimal places: {text!r}")
    if abs(value) > MONEY_MAX:
        raise ValueError(f"too large: {text!r} (at most {MONEY_MAX})")
    return value


def format_amount(value: Decimal | None) -> str | None:
    """`Decimal('19.9900')` -> `'19.99'`, `Decimal('12800')` -> `'12800.00'`: at least two places,
    more only when they carry digits."""
    if value is None:
        return None
    if value == value.quantize(CENTS):
        return str(value.quantize(CENTS))
    return str(value.normalize())
