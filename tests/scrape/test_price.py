from __future__ import annotations

from decimal import Decimal

import pytest

from monitor.scrape.price import ParsedPrice, normalize_currency, parse_price

D = Decimal

# (text, decimal_separator, default_currency, expected amount, expected currency)
PRICE_TABLE = [
    ("$1,299.99", None, None, D("1299.99"), "USD"),
    ("1.299,99 €", None, None, D("1299.99"), "EUR"),
    ("CHF 1'299.50", None, None, D("1299.50"), "CHF"),
    ("CHF 1’299.50", None, None, D("1299.50"), "CHF"),
    ("¥12,800", None, None, D("12800"), "JPY"),
    ("£7.5", None, None, D("7.5"), "GBP"),
    ("1\u00a0299,99\u00a0€", None, None, D("1299.99"), "EUR"),  # no-break spaces
    ("1\u2009299,99 €", None, None, D("1299.99"), "EUR"),  # thin space
    ("1\u202f299,99 €", None, None, D("1299.99"), "EUR"),  # narrow no-break space (fr-FR)
    ("US$ 12.00", None, None, D("12.00"), "USD"),
    ("C$ 15.25", None, None, D("15.25"), "CAD"),
    ("CA$15.25", None, None, D("15.25"), "CAD"),
    ("A$ 7.95", None, None, D("7.95"), "AUD"),
    ("JP¥ 500", None, None, D("500"), "JPY"),
    ("€ 1.000.000,00", None, None, D("1000000.00"), "EUR"),
    ("0,99€", None, None, D("0.99"), "EUR"),
    ("12 zł", None, None, D("12"), "PLN"),
    ("Cena: 1 249,00 zł", None, None, D("1249.00"), "PLN"),
    ("₹ 1,200", None, None, D("1200"), "INR"),
    ("R$ 10,50", None, None, D("10.50"), "BRL"),
    ("12.99 Kč", None, None, D("12.99"), "CZK"),
    ("1 299 ₽", None, None, D("1299"), "RUB"),
    ("1 299 Ft", None, None, D("1299"), "HUF"),
    ("EUR 5", None, None, D("5"), "EUR"),
    ("19.99 USD", None, None, D("19.99"), "USD"),
    ("GBP 3.50", None, None, D("3.50"), "GBP"),
    ("Fr. 12.50", None, None, D("12.50"), "CHF"),
    ("Price: $19.99", None, None, D("19.99"), "USD"),
    ("Now only 24,95 €", None, None, D("24.95"), "EUR"),
    # "kr" is SEK, NOK, DKK or ISK: only the configuration can say which
    ("10 kr", None, None, D("10"), None),
    ("149,00 kr", None, "SEK", D("149.00"), "SEK"),
    ("1.234 kr", None, "DKK", D("1234"), "DKK"),
    # a bare "$" means the configured dollar currency when there is one
    ("$5", None, "CAD", D("5"), "CAD"),
    ("$5", None, "EUR", D("5"), "USD"),
    ("¥ 88", None, "CNY", D("88"), "CNY"),
    # no currency on the page: the configured default, else None
    ("19.99", None, "EUR", D("19.99"), "EUR"),
    ("19.99", None, None, D("19.99"), None),
    ("19,99", None, "EUR", D("19.99"), "EUR"),
    ("12,-", None, "EUR", D("12"), "EUR"),
    # the configured decimal separator overrides price-parser's guess
    ("1.299", None, None, D("1299"), None),
    ("1.299", ".", None, D("1.299"), None),
    ("1,299", ",", "EUR", D("1.299"), "EUR"),
    ("1.299", ",", "EUR", D("1299"), "EUR"),
    ("$1,299.99", ".", None, D("1299.99"), "USD"),
    ("1 299,99 €", ",", None, D("1299.99"), "EUR"),
    # a currency on the page beats the configured default
    ("£7.50", None, "EUR", D("7.50"), "GBP"),
    ("$.75", None, None, D(".75"), "USD"),
    ("1299", None, None, D("1299"), None),
    # the configured currency settles symbols several currencies share
    ("352,00 р.", None, "BYN", D("352.00"), "BYN"),
    ("352,00 р.", None, None, D("352.00"), "RUB"),
    ("1 299 руб.", None, "BYN", D("1299"), "BYN"),
    ("£5", None, "EGP", D("5"), "EGP"),
    # symbols price-parser does not map (or find) by itself
    ("352,00 б.р.", None, None, D("352.00"), "BYN"),
    ("352,00 б.р.", None, "RUB", D("352.00"), "BYN"),
    ("15 000 원", None, None, D("15000"), "KRW"),
    ("12 500 тг.", None, None, D("12500"), "KZT"),
    ("129,99 Kn", None, None, D("129.99"), "HRK"),
    ("Knife set 129,99", None, "EUR", D("129.99"), "EUR"),
]


@pytest.mark.parametrize(("text", "separator", "default", "amount", "currency"), PRICE_TABLE)
def test_parse_price_formats(
    text: str, separator: str | None, default: str | None, amount: Decimal, currency: str | None
) -> None:
    parsed = parse_price(text, decimal_separator=separator, default_currency=default)
    assert parsed is not None
    assert parsed.amount == amount
    assert str(parsed.amount) == str(amount)  # exact digits, not just numerically equal
    assert isinstance(parsed.amount, Decimal)
    assert parsed.currency == currency


@pytest.mark.parametrize(
    "text", ["", "   ", "free", "Free!", "call for price", "Call for Price", "N/A", "n/a", "—", "Sold out", "€", "USD"]
)
def test_text_without_a_price_gives_none(text: str) -> None:
    assert parse_price(text) is None
    assert parse_price(text, default_currency="EUR") is None


def test_parse_price_returns_parsed_price_dataclass() -> None:
    assert parse_price("€ 3,50") == ParsedPrice(amount=Decimal("3.50"), currency="EUR")


def test_bad_decimal_separator_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="decimal_separator"):
        parse_price("1.00", decimal_separator=";")


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("€", "EUR"),
        ("eur", "EUR"),
        ("EUR", "EUR"),
        (" usd ", "USD"),
        ("$", "USD"),
        ("US$", "USD"),
        ("C$", "CAD"),
        ("CA$", "CAD"),
        ("A$", "AUD"),
        ("£", "GBP"),
        ("¥", "JPY"),
        ("JP¥", "JPY"),
        ("CHF", "CHF"),
        ("zł", "PLN"),
        ("₹", "INR"),
        ("R$", "BRL"),
        ("Kč", "CZK"),
        ("kr", None),
        # legacy codes still on pages mean today's currency
        ("RUR", "RUB"),
        ("rur", "RUB"),
        ("BYR", "BYN"),
        ("TRL", "TRY"),
        ("Kn", "HRK"),
        ("тг.", "KZT"),
        ("XXX", None),
        ("dollars?", None),
        ("", None),
        (None, None),
    ],
)
def test_normalize_currency(value: str | None, code: str | None) -> None:
    assert normalize_currency(value) == code


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1e5", "exponent notation"),
        ("2.5E+3 €", "exponent notation"),
        ("9" * 400, "above the largest amount"),
        ("12.345.678.901,00 €", "above the largest amount"),
        ("0.00001 BTC", "more than 4 decimal places"),
    ],
)
def test_numbers_that_are_not_amounts_pricemon_keeps_are_refused(text: str, reason: str) -> None:
    from monitor.money import MoneyRangeError

    with pytest.raises(MoneyRangeError, match=reason):
        parse_price(text)


def test_the_largest_amount_pricemon_keeps_is_a_price() -> None:
    assert parse_price("9,999,999,999.99 $") == ParsedPrice(amount=Decimal("9999999999.99"), currency="USD")
