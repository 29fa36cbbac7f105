"""Reading sitemaps (sitemaps.org 0.9): a `urlset` of pages or a `sitemapindex` of sitemaps,
plain or gzipped.

Parsed with defusedxml (no DTDs, no entities: a billion-laughs sitemap is refused, not expanded)
and gunzipped with a cap on the decompressed size (a gzip bomb stops at the cap). Fetching them
is the discoverer's job, through the competitor's fetcher, so robots.txt and politeness apply.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

GZIP_MAGIC = b"\x1f\x8b"
#: sitemaps.org: at most 50,000 URLs and 50 MB uncompressed per sitemap file
MAX_SITEMAP_BYTES = 50 * 1024 * 1024


class SitemapError(ValueError):
    """A sitemap that cannot be read; the message says why."""


@dataclass(frozen=True, slots=True)
class Sitemap:
    kind: str  # "urlset" or "sitemapindex"
    locations: tuple[str, ...]


def gunzip(body: bytes, cap: int = MAX_SITEMAP_BYTES) -> bytes:
    """`body` decompressed when it is gzip (by its magic bytes, whatever its name or type)."""
    if not body.startswith(GZIP_MAGIC):
        return body
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, cap + 1)
    except zlib.error as exc:
        raise SitemapError(f"not valid gzip: {exc}") from None
    if len(data) > cap or inflater.unconsumed_tail:
        raise SitemapError(f"more than {cap} bytes once decompressed")
    return data


def parse_sitemap(body: bytes, cap: int = MAX_SITEMAP_BYTES) -> Sitemap:
    """The `<loc>`s of a sitemap or sitemap index (gzip or plain XML)."""
    data = gunzip(body, cap)
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise SitemapError(f"refused: {type(exc).__name__} (DTDs and entities are not allowed in a sitemap)") from None
    except ParseError as exc:
        raise SitemapError(f"not well-formed XML: {exc}") from None
    kind = root.tag.rsplit("}", 1)[-1]
    if kind not in ("urlset", "sitemapindex"):
        raise SitemapError(f"root element <{kind}> is neither <urlset> nor <sitemapindex>")
    locations: list[str] = []
    # Only each <url>/<sitemap> entry's own <loc>: extensions (image:loc, video:loc) are not pages.
    for entry in root:
        for element in entry:
            if element.tag.rsplit("}", 1)[-1] == "loc" and element.text and element.text.strip():
                if element.tag.startswith("{") and not element.tag.startswith("{http://www.sitemaps.org/"):
                    continue
                locations.append(element.text.strip())
    return Sitemap(kind, tuple(dict.fromkeys(locations)))
