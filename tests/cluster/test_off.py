"""Without [cluster] broker_url nothing changes: the sweep runs in-process and Celery is never
imported (nor with `scrape --local`); a worker without a broker is refused with a clear error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.conftest import CountingShop, clean_env, pricemon, write_world

PROBE = """
import json, sys
from monitor.cli import main
code = 0
try:
    main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "loaded": sorted(m for m in sys.modules if m.split(".")[0] in ("celery", "kombu"))}))
"""


def _scrape_in_process(config: Path, cwd: Path, *args: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "--config", str(config), "scrape", *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = result.stdout.strip().splitlines()
    assert lines, result.stderr
    return json.loads(lines[-1])


@pytest.fixture
def shop() -> CountingShop:
    server = CountingShop()
    yield server  # type: ignore[misc]
    server.close()


def test_without_a_broker_the_sweep_is_in_process_and_celery_is_not_imported(
    tmp_path: Path, shop: CountingShop
) -> None:
    config = write_world(tmp_path, f"sqlite:///{tmp_path / 'p.db'}", shop, {"acme": 20})
    probe = _scrape_in_process(config, tmp_path)
    assert probe == {"code": 0, "loaded": []}
    assert shop.total == 20


def test_scrape_local_sweeps_in_process_even_with_a_broker(tmp_path: Path, shop: CountingShop) -> None:
    config = write_world(tmp_path, f"sqlite:///{tmp_path / 'p.db'}", shop, {"acme": 20})
    # A broker nobody listens on: --local must not even try it.
    config.write_text(config.read_text() + '\n[cluster]\nbroker_url = "amqp://guest@127.0.0.1:9/"\n')
    probe = _scrape_in_process(config, tmp_path, "--local")
    assert probe == {"code": 0, "loaded": []}
    assert shop.total == 20


def test_a_worker_needs_a_broker_and_a_broker_needs_its_password(tmp_path: Path, shop: CountingShop) -> None:
    config = write_world(tmp_path, f"sqlite:///{tmp_path / 'p.db'}", shop, {"acme": 1})
    result = pricemon(config, "worker", cwd=tmp_path)
    assert result.returncode != 0
    assert "pricemon worker needs [cluster] broker_url" in result.stderr
    config.write_text(
        config.read_text()
        + '\n[cluster]\nbroker_url = "amqp://guest@127.0.0.1:9/"\nbroker_password_env = "NOT_SET_ANYWHERE"\n'
    )
    result = pricemon(config, "scrape", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "cluster.broker_password_env: the environment variable NOT_SET_ANYWHERE is not set" in result.stderr
