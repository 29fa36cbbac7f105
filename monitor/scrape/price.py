"""Turn price text such as ``"1.299,99 €"`` into a Decimal amount and an ISO 4217 currency code.

Number and symbol recognition is delegated to the maintained ``price-parser`` library; this module
only adds what a price monitor needs on top: ISO codes instead of symbols, a configured default
currency for pages (or symbols like ``kr``) that do not say which currency they mean, refusing
text that holds no number at all (``price-parser`` reads ``"free"`` as 0), and refusing numbers that
are not amounts pricemon keeps (exponent notation, beyond `monitor.money.MONEY_MAX`) with
`MoneyRangeError` instead of storing ``"1e5"`` as 1.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from price_parser import Price
from price_parser._currencies import CURRENCIES

from monitor.money import MoneyRangeError, check_money

logger = logging.getLogger(__name__)

__all__ = ["ParsedPrice", "normalize_currency", "parse_price", "parse_price_detail"]


@dataclass(frozen=True, slots=True)
class ParsedPrice:
    amount: Decimal
    currency: str | None  # ISO 4217 or None


# "XXX" means "no currency" in ISO 4217; a page that says so has told us nothing.
_ISO_CODES: frozenset[str] = frozenset(code for code in CURRENCIES if len(code) == 3 and code != "XXX")

# Symbols shared by several currencies. The first entry is what the symbol means when the
# configured default currency is not one of the others: "$" alone is USD for a US shop but CAD
# for a listing configured as CAD. None means "only the configured default can tell".
_SHARED_SYMBOLS: dict[str, tuple[str | None, frozenset[str]]] = {
    "$": ("USD", frozenset({"USD", "CAD", "AUD", "NZD", "HKD", "SGD", "MXN", "TWD", "ARS", "CLP", "COP"})),
    "¥": ("JPY", frozenset({"JPY", "CNY"})),
    "￥": ("JPY", frozenset({"JPY", "CNY"})),
    "kr": (None, frozenset({"SEK", "NOK", "DKK", "ISK"})),
    "kr.": (None, frozenset({"SEK", "NOK", "DKK", "ISK"})),
    "Kr": (None, frozenset({"SEK", "NOK", "DKK", "ISK"})),
    "Rs": (None, frozenset({"INR", "PKR", "LKR", "NPR", "MUR"})),
    "Rs.": (None, frozenset({"INR", "PKR", "LKR", "NPR", "MUR"})),
    # Russian and Belarusian roubles are both written "р." and "руб."
    "р.": ("RUB", frozenset({"RUB", "BYN"})),
    "руб": ("RUB", frozenset({"RUB", "BYN"})),
    "руб.": ("RUB", frozenset({"RUB", "BYN"})),
    "Br": ("BYN", frozenset({"BYN", "ETB"})),
    "£": ("GBP", frozenset({"GBP", "EGP", "GIP", "FKP", "SHP", "LBP", "SYP", "SSP"})),
    "lei": ("RON", frozenset({"RON", "MDL"})),
    "₩": ("KRW", frozenset({"KRW", "KPW"})),
    "원": ("KRW", frozenset({"KRW", "KPW"})),
}
_SHARED_SYMBOLS_FOLDED = {symbol.casefold(): entry for symbol, entry in _SHARED_SYMBOLS.items()}

# Symbols price-parser does not find in text at all; looked for first, as whole words.
_EXTRA_SYMBOLS: dict[str, str] = {
    "б.р.": "BYN",
    "бел. руб.": "BYN",
    "бел.руб.": "BYN",
    "тг.": "KZT",
    "тг": "KZT",
    "тңг.": "KZT",
    "Kn": "HRK",
    "KN": "HRK",
}
_EXTRA_SYMBOL = re.compile(
    r"(?<!\w)(" + "|".join(re.escape(s) for s in sorted(_EXTRA_SYMBOLS, key=len, reverse=True)) + r")(?![^\W\d_])"
)

# Codes pages still use for currencies that were renamed or redenominated: a page that says RUR
# or BYR today means the current rouble.
_LEGACY_CODES: dict[str, str] = {
    "RUR": "RUB",
    "BYR": "BYN",
    "TRL": "TRY",
    "ROL": "RON",
    "GHC": "GHS",
    "ZMK": "ZMW",
    "MZM": "MZN",
    "RMB": "CNY",
    "NIS": "ILS",
}

# Symbols whose meaning is settled by usage even though price-parser's tables list them for
# several (often obsolete) currencies.
_KNOWN_SYMBOLS: dict[str, str] = {
    "US$": "USD",
    "C$": "CAD",
    "CA$": "CAD",
    "A$": "AUD",
    "AU$": "AUD",
    "NZ$": "NZD",
    "HK$": "HKD",
    "S$": "SGD",
    "MX$": "MXN",
    "NT$": "TWD",
    "R$": "BRL",
    "€": "EUR",
    "euro": "EUR",
    "eur": "EUR",
    "£": "GBP",
    "JP¥": "JPY",
    "CN¥": "CNY",
    "元": "CNY",
    "円": "JPY",
    "zł": "PLN",
    "Zł": "PLN",
    "pln": "PLN",
    "₹": "INR",
    "Kč": "CZK",
    "Ft": "HUF",
    "₽": "RUB",
    "руб": "RUB",
    "руб.": "RUB",
    "₺": "TRY",
    "₪": "ILS",
    "฿": "THB",
    "₫": "VND",
    "đ": "VND",
    "₴": "UAH",
    "грн": "UAH",
    "грн.": "UAH",
    "₱": "PHP",
    "₦": "NGN",
    "Fr.": "CHF",
    "lei": "RON",
    "лв": "BGN",
    "лв.": "BGN",
    "₸": "KZT",
    "₼": "AZN",
    "₾": "GEL",
    "₿": "XBT",
}


def _derive_symbol_table() -> dict[str, str]:
    """Every symbol price-parser knows that names exactly one current currency, plus the overrides."""
    owners: dict[str, set[str]] = {}
    for code, info in CURRENCIES.items():
        symbols = {info.get("s", ""), info.get("sn", ""), *info.get("sn2", [])}
        for symbol in symbols:
            symbol = symbol.strip()
            if symbol and symbol != code:
                owners.setdefault(symbol, set()).add(code)
    table = {symbol: next(iter(codes)) for symbol, codes in owners.items() if len(codes) == 1}
    table.update(_KNOWN_SYMBOLS)
    return table


_SYMBOL_TABLE = _derive_symbol_table()
_SYMBOL_TABLE_FOLDED = {symbol.casefold(): code for symbol, code in _SYMBOL_TABLE.items()}

# price-parser reads words like "free" as 0; a price we report must have come from a digit.
_HAS_DIGIT = re.compile(r"\d")
# The extra symbols are all non-ASCII but "Kn": a cheap test spares the regex on "$19.99".
_NON_ASCII_OR_KN = re.compile(r"[^\x00-\x7f]|Kn|KN")
# Thin, narrow no-break and figure spaces are digit-group separators in several locales;
# price-parser handles the plain no-break space, so fold the rest into it.
_EXOTIC_SPACES = str.maketrans({"\u2009": "\u00a0", "\u202f": "\u00a0", "\u2007": "\u00a0", "\u200a": "\u00a0"})
# Apostrophe-like digit-group separators used in Switzerland ("1'299.50", "1’299.50").
_APOSTROPHE_GROUPS = re.compile(r"(?<=\d)['’ʼ′](?=\d{3}\b)")
# "1e5", "2.5E+3": price-parser reads the digits before the "e" and drops the rest.
_EXPONENT = re.compile(r"\d[eE][+-]?\d")


def normalize_currency(value: str | None) -> str | None:
    """Return the ISO 4217 code for a code or symbol (``"€"``, ``"eur"``, ``"EUR"`` -> ``"EUR"``).

    Shared symbols get their customary meaning (``"$"`` -> USD, ``"¥"`` -> JPY); symbols with no
    customary meaning (``"kr"``) and anything unknown give None.
    """
    if not value:
        return None
    value = value.strip()
    upper = value.upper()
    if upper in _LEGACY_CODES:
        return _LEGACY_CODES[upper]
    if upper in _ISO_CODES:
        return upper
    shared = _SHARED_SYMBOLS.get(value) or _SHARED_SYMBOLS_FOLDED.get(value.casefold())
    if shared is not None:
        return shared[0]
    extra = _EXTRA_SYMBOLS.get(value)
    if extra is not None:
        return extra
    return _SYMBOL_TABLE.get(value) or _SYMBOL_TABLE_FOLDED.get(value.casefold())


def _currency_from_symbol(symbol: str, default_currency: str | None) -> str | None:
    # The configured currency settles a symbol several currencies share ("р." with BYN is BYN).
    shared = _SHARED_SYMBOLS.get(symbol) or _SHARED_SYMBOLS_FOLDED.get(symbol.casefold())
    if shared is not None:
        customary, possible = shared
        if default_currency in possible:
            return default_currency
        return customary if customary is not None else default_currency
    return normalize_currency(symbol)


def parse_price_detail(
    text: str, *, decimal_separator: str | None = None, default_currency: str | None = None
) -> tuple[Decimal, str | None, bool] | None:
    """Like :func:`parse_price`, also telling whether the text itself named the currency.

    The extractor needs the difference: two sources giving the same amount are one price when
    only one of them names a currency, but two prices when they name different currencies.
    """
    if not text or not _HAS_DIGIT.search(text):
        return None
    if decimal_separator not in (None, ".", ","):
        raise ValueError(f"decimal_separator must be '.' or ',', not {decimal_separator!r}")
    if _EXPONENT.search(text):
        raise MoneyRangeError(f"price in exponent notation is not an amount: {_excerpt(text)!r}")
    text = _APOSTROPHE_GROUPS.sub("", text.translate(_EXOTIC_SPACES))
    try:
        parsed = Price.fromstring(text, decimal_separator=decimal_separator)
    except (InvalidOperation, ValueError, IndexError):  # price-parser's guesses can trip on odd text
        logger.debug("price-parser failed on %r", text[:80])
        return None
    amount = parsed.amount
    if amount is None or not amount.is_finite() or amount < 0:
        return None
    amount = check_money(amount, what="price")
    extra = _EXTRA_SYMBOL.search(text) if _NON_ASCII_OR_KN.search(text) else None
    if extra is not None:
        currency: str | None = _EXTRA_SYMBOLS[extra.group(1)]
    else:
        currency = _currency_from_symbol(parsed.currency, default_currency) if parsed.currency else None
    if currency is not None:
        return amount, currency, True
    return amount, normalize_currency(default_currency), False


def parse_price(
    text: str, *, decimal_separator: str | None = None, default_currency: str | None = None
) -> ParsedPrice | None:
    """Parse price text like ``"$1,299.99"``, ``"1.299,99 €"`` or ``"CHF 1'299.50"``.

    ``decimal_separator`` (``"."`` or ``","``) forces how ``"1.299"`` is read instead of letting
    price-parser guess. ``default_currency`` is used when the text names no currency or only an
    ambiguous symbol (``kr``), and also settles shared symbols (``"$"`` with default CAD is CAD).
    Returns None for text without a price (``""``, ``"free"``, ``"call for price"``, ``"N/A"``);
    raises `monitor.money.MoneyRangeError` for a number that is not an amount pricemon keeps
    (``"1e5"``, above ``MONEY_MAX``, more than four decimal places that are not zeros).
    """
    detail = parse_price_detail(text, decimal_separator=decimal_separator, default_currency=default_currency)
    if detail is None:
        return None
    return ParsedPrice(amount=detail[0], currency=detail[1])


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 40 else f"{text[:37]}..."
