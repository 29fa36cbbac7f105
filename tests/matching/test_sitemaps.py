"""Sitemap reading: indexes, gzip, and what must be refused."""

from __future__ import annotations

import gzip

import pytest

from monitor.matching.sitemaps import SitemapError, parse_sitemap

NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'


def test_urlset_index_and_gzip() -> None:
    body = (
        f'<?xml version="1.0"?><urlset {NS} xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">'
        "<url><loc> https://s.example/p/1 </loc><image:image><image:loc>https://s.example/i.jpg</image:loc>"
        "</image:image></url><url><loc>https://s.example/p/2</loc></url></urlset>"
    ).encode()
    plain = parse_sitemap(body)
    assert plain.kind == "urlset" and plain.locations == ("https://s.example/p/1", "https://s.example/p/2")
    assert parse_sitemap(gzip.compress(body)) == plain  # an image's loc is no page
    index = parse_sitemap(f"<sitemapindex {NS}><sitemap><loc>/s1.xml.gz</loc></sitemap></sitemapindex>".encode())
    assert index.kind == "sitemapindex" and index.locations == ("/s1.xml.gz",)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
            b"<urlset><url><loc>&lol2;</loc></url></urlset>",
            "DTDs and entities are not allowed",
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><urlset><url><loc>&e;</loc>'
            b"</url></urlset>",
            "DTDs and entities are not allowed",
        ),
        (b"<html><body>not a sitemap</body></html>", "neither <urlset> nor <sitemapindex>"),
        (b"<urlset><url><loc>x", "not well-formed"),
        (b"\x1f\x8b\x08garbage", "not valid gzip"),
    ],
)
def test_bad_and_hostile_sitemaps_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(SitemapError, match=message):
        parse_sitemap(body)


def test_a_gzip_bomb_stops_at_the_cap() -> None:
    bomb = gzip.compress(b"<urlset>" + b" " * 5_000_000 + b"</urlset>")
    assert len(bomb) < 10_000
    with pytest.raises(SitemapError, match="more than 1000000 bytes once decompressed"):
        parse_sitemap(bomb, cap=1_000_000)
