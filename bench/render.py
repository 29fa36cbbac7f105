"""What rendering costs: a sweep of pages whose price is written by JavaScript (`render = "browser"`),
against the same number of plain JSON-LD pages read without a browser, both served on 127.0.0.1.

`python -m bench.render --pages 200` serves the pages from a threaded server in this process,
runs `pricemon scrape` as a measured child (wall seconds, peak RSS of its tree, Chromium included),
checks every recorded price against the truth, and appends the figures to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil

from bench.process_meter import MeasuredRun, run_measured
from bench.runner import DEFAULT_RESULTS, _date_u, append_results, child_env, describe_machine, pricemon_executable

logger = logging.getLogger(__name__)

#: seconds between two samples of proportional memory (reading smaps of every process is slow)
PSS_INTERVAL_S = 0.5


class PssMeter:
    """Peak proportional set size of this process's descendants: RSS counts the memory Chromium's
    processes share once per process, PSS splits it between them, so their sum is what they cost."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PssMeter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(PSS_INTERVAL_S):
            total = 0
            for child in me.children(recursive=True):
                try:
                    total += child.memory_full_info().pss
                except (psutil.Error, AttributeError):
                    continue
            self.peak = max(self.peak, total)

    @property
    def peak_mb(self) -> float:
        return self.peak / 1024 / 1024


FILLER = "".join(f"<li class='spec'>Specification line {i}: stainless steel, 1.7 l, 2200 W</li>" for i in range(120))


def _price(i: int, seed: int) -> Decimal:
    return Decimal(random.Random(seed * 100_003 + i).randrange(500, 99_999)) / 100


def js_page(i: int) -> str:
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Kettle {i}</title>
<link rel="stylesheet" href="/static/shop.css"></head><body>
<h1>Kettle {i}</h1><img src="/img/{i}.jpg" alt=""><div class="buy"><span id="price"></span></div>
<ul>{FILLER}</ul><script src="/static/app.js"></script></body></html>"""


def static_page(i: int, price: Decimal) -> str:
    data = {
        "@context": "https://schema.org",
        "@type": "Product",
        "name": f"Kettle {i}",
        "offers": {"@type": "Offer", "price": str(price), "priceCurrency": "EUR"},
    }
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Kettle {i}</title>
<script type="application/ld+json">{json.dumps(data)}</script></head><body>
<h1>Kettle {i}</h1><ul>{FILLER}</ul></body></html>"""


APP_JS = """
const id = location.pathname.split("/").pop();
fetch("/api/" + id).then(r => r.json()).then(d => {
  document.querySelector("#price").textContent = d.price + " €";
});
"""


def serve(pages: int, seed: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            parts = path.strip("/").split("/")
            kind, body = "text/html; charset=utf-8", b""
            status = 200
            try:
                if path == "/robots.txt":
                    kind, body = "text/plain", b"User-agent: *\nDisallow:\n"
                elif path == "/static/app.js":
                    kind, body = "application/javascript", APP_JS.encode()
                elif parts[0] == "js":
                    body = js_page(int(parts[1])).encode()
                elif parts[0] == "plain":
                    body = static_page(int(parts[1]), _price(int(parts[1]), seed)).encode()
                elif parts[0] == "api":
                    kind, body = "application/json", json.dumps({"price": str(_price(int(parts[1]), seed))}).encode()
                else:
                    status, body = 404, b"no"
            except (ValueError, IndexError):
                status, body = 404, b"no"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def sweep(
    work: Path, base: str, kind: str, pages: int, args: argparse.Namespace
) -> tuple[MeasuredRun, float, int, int]:
    """One measured `pricemon scrape` over `pages` listings of `kind` ("js" or "plain"); returns the
    run, the prices read right and the listings with a wrong or no price."""
    run = work / kind
    run.mkdir()
    render = 'render = "browser"\n' if kind == "js" else ""
    (run / "pricemon.toml").write_text(
        f"""[scrape]
workers = 1
browser_pages = {args.browser_pages}
browser_executable = "{args.chromium}"
[[competitors]]
name = "shop"
base_url = "{base}/"
min_delay = "0s"
max_concurrency = {args.max_concurrency}
{render}[competitors.selectors]
price = "#price"
currency = "EUR"
""",
        encoding="utf-8",
    )
    (run / "products.csv").write_text(
        "sku,name,price,currency\n" + "".join(f"S{i},Kettle {i},50.00,EUR\n" for i in range(pages)), encoding="utf-8"
    )
    (run / "listings.csv").write_text(
        "sku,competitor,url\n" + "".join(f"S{i},shop,{base}/{kind}/{i}\n" for i in range(pages)), encoding="utf-8"
    )
    pricemon = [
        pricemon_executable(),
        "--config",
        str(run / "pricemon.toml"),
        "--database-url",
        f"sqlite:///{run / 'pricemon.db'}",
    ]
    env = child_env()
    for what in ("products", "listings"):
        subprocess.run([*pricemon, "import", what, str(run / f"{what}.csv")], env=env, check=True, capture_output=True)
    with PssMeter() as pss:
        measured = run_measured([*pricemon, "scrape", "--json"], env=env, cwd=run, timeout_s=3600)
    if measured.returncode != 0:
        raise SystemExit(f"bench.render: pricemon scrape failed: {measured.stderr[-2000:]}")
    listed = subprocess.run([*pricemon, "listings", "--json"], env=env, check=True, capture_output=True, text=True)
    right = 0
    for row in json.loads(listed.stdout):
        i = int(row["sku"][1:])
        right += row.get("price") is not None and Decimal(row["price"]) == _price(i, args.seed)
    return measured, pss.peak_mb, right, pages - right


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.render", description=__doc__)
    parser.add_argument("--pages", type=int, default=200, help="listings per sweep (default 200)")
    parser.add_argument("--browser-pages", type=int, default=4, help="scrape.browser_pages (default 4)")
    parser.add_argument("--max-concurrency", type=int, default=8, help="the competitor's max_concurrency")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help="Markdown file to append to")
    parser.add_argument("--no-append", action="store_true", help="print the figures only")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if shutil.which(args.chromium) is None:
        raise SystemExit(f"bench.render: no Chromium at {args.chromium}")
    server = serve(args.pages, args.seed)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="pricemon-bench-render-") as tmp:
            for kind, label in (("plain", "JSON-LD pages, no browser"), ("js", "JavaScript pages, render = browser")):
                measured, pss, right, wrong = sweep(Path(tmp), base, kind, args.pages, args)
                rate = args.pages / measured.seconds if measured.seconds else 0.0
                rows.append((label, measured, pss, rate, right, wrong))
    finally:
        server.shutdown()
        server.server_close()
    machine = describe_machine("python")
    lines = [
        f"## {_date_u()}",
        "",
        f"Rendered sweep: {args.pages} listings, browser_pages = {args.browser_pages}, max_concurrency = "
        f"{args.max_concurrency}, one worker; pages served by bench.render's threaded server in the measuring "
        "process (it shares the CPUs).",
        "",
        f"Command: `python -m bench.render {' '.join(argv)}`".rstrip() + "",
        "",
        f"Machine: {machine['nproc']} CPUs ({machine['cpu']}), {machine['ram']} RAM, {machine['os']}, "
        f"Python {machine['python']}; {machine['packages']}; "
        f"{subprocess.run([args.chromium, '--version'], capture_output=True, text=True).stdout.strip()}; "
        f"git {machine['git']}.",
        "",
        "| sweep | seconds | pages/s | peak RSS MB (sum over the tree) | peak PSS MB | CPU s | read right "
        "| wrong or none |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, measured, pss, rate, right, wrong in rows:
        lines.append(
            f"| {label} | {measured.seconds:.2f} | {rate:,.1f} | {measured.peak_rss_mb:,.0f} | {pss:,.0f} | "
            f"{measured.cpu_seconds:.1f} | {right} | {wrong} |"
        )
    section = "\n".join(lines) + "\n"
    sys.stdout.write("\n" + section)
    if not args.no_append:
        append_results(args.results, section)
    return 0 if all(wrong == 0 for *_, wrong in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
