"""The Scrapy baseline crawls the served web with pricemon's extraction and limits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.accuracy import compare_to_truth, observations_from_jsonl
from bench.runner import child_env
from bench.scrapy_baseline import read_competitors, scrapy_settings
from bench.static_server import StaticServer
from bench.synthetic_web import SyntheticWeb, write_run_inputs


def test_baseline_extracts_every_page_to_the_truth(
    small_web: SyntheticWeb, served_web: StaticServer, tmp_path: Path
) -> None:
    inputs = write_run_inputs(small_web, served_web.base_urls, tmp_path, max_concurrency=3)
    out = tmp_path / "items.jsonl"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.scrapy_baseline",
            "--config",
            str(inputs.config_path),
            "--listings",
            str(inputs.listings_csv),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=child_env(),
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["items"] == small_web.page_count
    assert summary["robots_requests"] == len(small_web.shops)
    accuracy = compare_to_truth(observations_from_jsonl(out), small_web.read_truth())
    assert accuracy.examples == []
    assert accuracy.ratio == 1.0


def test_settings_give_each_shop_its_own_slot_with_its_limits(small_web: SyntheticWeb, tmp_path: Path) -> None:
    base_urls = {shop.name: f"http://127.0.0.1:{19001 + i}" for i, shop in enumerate(small_web.shops)}
    inputs = write_run_inputs(small_web, base_urls, tmp_path, max_concurrency=6, min_delay="250ms")
    settings = scrapy_settings(read_competitors(inputs.config_path), tmp_path / "out.jsonl")
    assert settings["ROBOTSTXT_OBEY"] is True
    assert settings["AUTOTHROTTLE_ENABLED"] is False
    assert settings["CONCURRENT_REQUESTS_PER_DOMAIN"] == 6
    assert settings["DOWNLOAD_DELAY"] == 0.25
    assert settings["DOWNLOAD_SLOTS"]["127.0.0.1:19001"] == {"concurrency": 6, "delay": 0.25, "jitter": 0}
    assert len(settings["DOWNLOAD_SLOTS"]) == len(small_web.shops)
