"""Product identifiers: GTIN family (EAN-8/13, UPC-A/E, ISBN-10/13, GTIN-14) and MPNs.

A GTIN is kept only when its check digit is right, and always as GTIN-14 (left-padded with
zeros), so that the EAN-13 `4006381333931` and the GTIN-14 `04006381333931` are one product.
"""

from __future__ import annotations

import re

_DIGITS = re.compile(r"\d+")


def gtin_check_digit(body: str) -> int:
    """The GS1 check digit of `body` (all digits of a GTIN but the last)."""
    total = 0
    for index, char in enumerate(reversed(body)):
        total += int(char) * (3 if index % 2 == 0 else 1)
    return (10 - total % 10) % 10


def _isbn10_to_gtin(text: str) -> str | None:
    if not re.fullmatch(r"\d{9}[\dX]", text):
        return None
    total = sum((10 - i) * (10 if c == "X" else int(c)) for i, c in enumerate(text))
    if total % 11:
        return None
    body = "978" + text[:9]
    return body + str(gtin_check_digit(body))


def _upce_to_upca(text: str) -> str | None:
    """UPC-E (8 digits, number system 0 or 1) expanded to UPC-A, check digit kept."""
    system, middle, check = text[0], text[1:7], text[7]
    if system not in "01":
        return None
    last = middle[5]
    if last in "012":
        body = middle[0:2] + last + "0000" + middle[2:5]
    elif last == "3":
        body = middle[0:3] + "00000" + middle[3:5]
    elif last == "4":
        body = middle[0:4] + "00000" + middle[4]
    else:
        body = middle[0:5] + "0000" + last
    return system + body + check


def normalize_gtin(value: object) -> str | None:
    """`value` as a GTIN-14 when it is a valid GTIN-8/12/13/14, UPC-E or ISBN-10/13, else None.

    Spaces, dashes and a `urn:` / `gtin:` prefix are allowed; a wrong check digit, all zeros
    or another length is no GTIN (a page that gets its code wrong does not match by it).
    """
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip().upper()
    text = re.sub(r"^(?:URN:)?(?:GTIN(?:-?\d+)?|EAN|UPC|ISBN(?:-?1[03])?)[:\s]*", "", text)
    text = re.sub(r"[\s\-.]", "", text)
    if len(text) == 10:  # ISBN-10, the only 10-character code
        converted = _isbn10_to_gtin(text)
        return converted.zfill(14) if converted else None
    if not text.isdigit():
        return None
    candidates = [text]
    if len(text) == 8:
        upca = _upce_to_upca(text)
        if upca is not None:
            candidates.append(upca)
    elif len(text) not in (12, 13, 14):
        return None
    for code in candidates:
        if int(code) == 0:
            continue
        if gtin_check_digit(code[:-1]) == int(code[-1]):
            # An EAN-8 and a UPC-E can both be right; the EAN-8 reading wins (it is the code).
            return code.zfill(14)
    return None


def normalize_mpn(value: object) -> str | None:
    """A manufacturer part number compared as shops write it differently: `WH-1000XM4/B`,
    `wh1000xm4 b` and `WH 1000 XM4-B` are one; fewer than 3 characters identifies nothing."""
    if value is None or isinstance(value, bool):
        return None
    text = re.sub(r"[^0-9A-Za-z]", "", str(value)).upper()
    return text if len(text) >= 3 else None


def normalize_brand(value: object) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = re.sub(r"[^0-9a-z]+", " ", str(value).casefold()).strip()
    return text or None
