"""The static server: one port per shop, the generated files, conditional requests, clean stop."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from bench.static_server import find_nginx, start_static_server
from bench.synthetic_web import ROBOTS_TXT, SyntheticWeb

KINDS = [
    pytest.param(
        "nginx", marks=pytest.mark.skipif(find_nginx() is None, reason="nginx is not installed (apt-get install nginx)")
    ),
    "python",
]


@pytest.mark.parametrize("kind", KINDS)
def test_serves_each_shop_with_conditional_requests(kind: str, small_web: SyntheticWeb, tmp_path: Path) -> None:
    roots = {shop.name: small_web.shop_root(shop.name) for shop in small_web.shops[:2]}
    server = start_static_server(roots, tmp_path, prefer=kind, workers=1)
    try:
        assert server.kind == kind
        assert len(set(server.base_urls.values())) == len(roots)
        row = next(r for (c, _), r in small_web.read_truth().items() if c == small_web.shops[1].name)
        url = server.base_urls[row.competitor] + row.path
        with httpx.Client() as client:
            page = client.get(url)
            assert page.status_code == 200
            assert page.content == (roots[row.competitor] / row.path.lstrip("/")).read_bytes()
            assert page.headers["content-type"].startswith("text/html")
            assert client.get(server.base_urls[row.competitor] + "/robots.txt").text == ROBOTS_TXT
            assert client.get(server.base_urls[row.competitor] + "/products/none.html").status_code == 404

            unchanged = client.get(url, headers={"If-Modified-Since": page.headers["last-modified"]})
            assert unchanged.status_code == 304 and unchanged.content == b""
            if kind == "nginx":
                etag = page.headers["etag"]
                assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
                assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
    finally:
        server.stop()
    assert all(process.poll() is not None for process in server.processes)
    port = int(server.base_urls[small_web.shops[0].name].rsplit(":", 1)[1])
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


@pytest.mark.skipif(find_nginx() is None, reason="nginx is not installed (apt-get install nginx)")
def test_nginx_keeps_its_files_in_the_work_dir(small_web: SyntheticWeb, tmp_path: Path) -> None:
    shop = small_web.shops[0]
    with start_static_server({shop.name: small_web.shop_root(shop.name)}, tmp_path, workers=1) as server:
        assert (tmp_path / "nginx" / "nginx.pid").read_text().strip() == str(server.processes[0].pid)
        conf = (tmp_path / "nginx" / "nginx.conf").read_text()
        assert "daemon off;" in conf and "etag on;" in conf
    assert not (tmp_path / "nginx" / "nginx.pid").exists()
