"""The matching market generator: realistic, varied titles and a truth file that fits the pages."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from bench.match_shops import generate
from monitor.matching.identifiers import normalize_gtin
from monitor.matching.sitemaps import parse_sitemap


def test_market_titles_differ_between_shops_and_the_truth_fits_the_pages(tmp_path: Path) -> None:
    market = generate(tmp_path / "m", shops=4, pages=60, seed=3)
    ours = {r["sku"]: r for r in csv.DictReader((market / "products.csv").open())}
    truth = list(csv.DictReader((market / "truth.csv").open()))
    assert len(truth) == 4 * 60
    titles: dict[str, set[str]] = {}
    gtin_shops = set()
    for row in truth:
        body = (market / "shops" / row["competitor"] / row["url_path"].lstrip("/")).read_text()
        title = re.search(r"<h1[^>]*>(.*?)</h1>", body).group(1)
        titles.setdefault(row["item"], set()).add(title)
        if row["sku"]:
            assert row["sku"] in ours
        found = re.search(r'"gtin13": "(\d+)"|itemprop="gtin13" content="(\d+)"', body)
        if found:
            gtin_shops.add(row["competitor"])
            assert normalize_gtin(found.group(1) or found.group(2))  # check digits are right
    assert any(len(t) > 1 for t in titles.values()), "shops write one product's title differently"
    assert 0 < len(gtin_shops) < 4, "some shops publish GTINs, some do not"
    names = [r["name"] for r in ours.values()]
    assert len(names) == len(set(names)) and any(r["gtin"] == "" for r in ours.values())
    # look-alikes: products of one family differing in one attribute
    families: dict[str, list[str]] = {}
    for name in names:
        families.setdefault(" ".join(name.split()[:3]), []).append(name)
    assert any(len(f) > 1 for f in families.values())
    gz = [p for p in (market / "shops").rglob("*.xml.gz")]
    assert gz and parse_sitemap(gz[0].read_bytes()).kind == "urlset"
    assert json.loads((market / "done").read_text())["pages"] == 60
