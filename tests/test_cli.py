"""The `pricemon` command as a user meets it: defaults, --json, and errors without tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import run_pricemon


def test_without_config_pricemon_uses_pricemon_db_in_the_working_directory(tmp_path: Path) -> None:
    env = {"PRICEMON_CONFIG": "", "PRICEMON_DATABASE_URL": ""}
    result = run_pricemon("products", "--json", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    assert (tmp_path / "pricemon.db").is_file()
    current = run_pricemon("db", "current", "--json", cwd=tmp_path, env=env)
    data = json.loads(current.stdout)
    assert data["current"] == data["head"] is not None


def test_help_needs_no_config_or_database(tmp_path: Path) -> None:
    result = run_pricemon("--help", cwd=tmp_path, env={"PRICEMON_CONFIG": str(tmp_path / "missing.toml")})
    assert result.returncode == 0
    assert "import" in result.stdout and "listings" in result.stdout
    assert not (tmp_path / "pricemon.db").exists()


def test_a_bad_config_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[[competitors]]\nname = "x"\nbase_url = "file:///etc"\nspeed = 3\n', encoding="utf-8")
    result = run_pricemon("--config", str(config), "products", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("pricemon: error: invalid configuration:")
    assert f"{config}: competitors[0].base_url: expected an http:// or https:// URL" in result.stderr
    assert f"{config}: competitors[0].speed: unknown key" in result.stderr


def test_a_database_that_is_not_pricemons_is_refused(tmp_path: Path) -> None:
    import sqlite3

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE customers (id INTEGER)")
    result = run_pricemon("--database-url", f"sqlite:///{other}", "products", cwd=tmp_path)
    assert result.returncode == 1
    assert "has tables but no pricemon schema" in result.stderr
    missing = run_pricemon("--database-url", f"sqlite:///{tmp_path}/no/such/dir/x.db", "products", cwd=tmp_path)
    assert missing.returncode == 1 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr


def test_config_check_hides_passwords(tmp_path: Path, write_config) -> None:
    config = write_config(
        'database_url = "postgresql+psycopg://u:hunter2@127.0.0.1/x"\n'
        '[[competitors]]\nname = "a"\nbase_url = "http://127.0.0.1:9"\nproxy = "http://p:s3cret@127.0.0.1:3128"\n'
    )
    result = run_pricemon("--config", str(config), "config", "check", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout and "s3cret" not in result.stdout
    assert json.loads(result.stdout)["competitors"][0]["name"] == "a"


def test_unknown_command_is_a_usage_error(tmp_path: Path) -> None:
    result = run_pricemon("frobnicate", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("pricemon: error: No such command 'frobnicate'")


def test_scrape_of_an_unknown_sku_is_an_error_like_an_unknown_competitor(
    tmp_path: Path, write_config, pricemon_cli
) -> None:
    config = write_config('[[competitors]]\nname = "acme"\nbase_url = "http://127.0.0.1:9/"\n')
    pricemon = pricemon_cli(config, f"sqlite:///{tmp_path / 'p.db'}")
    products = tmp_path / "products.csv"
    products.write_text("sku,name,price,currency\nA-1,a,10.00,EUR\n", encoding="utf-8")
    pricemon("import", "products", str(products))
    result = pricemon("scrape", "--sku", "A-1", "--sku", "NOPE", expect=1)
    assert result.stderr.startswith("pricemon: error: unknown SKU(s) 'NOPE'") and "Traceback" not in result.stderr
    assert "unknown competitor(s) 'nobody'" in pricemon("scrape", "--competitor", "nobody", expect=1).stderr
    # nothing was swept
    assert pricemon("scrape", "--sku", "A-1", "--json").json()["checked"] == 0


def test_report_to_a_name_whose_format_it_cannot_write_is_an_error(tmp_path: Path, pricemon_cli) -> None:
    pricemon = pricemon_cli(None, f"sqlite:///{tmp_path / 'p.db'}")
    result = pricemon("report", "--out", str(tmp_path / "report.xlsx"), expect=2)
    assert "cannot tell the report format from 'report.xlsx'" in result.stderr
    assert not (tmp_path / "report.xlsx").exists()
    pricemon("report", "--out", str(tmp_path / "report.json"))
    assert json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))["summary"] is not None
    pricemon("report", "--out", str(tmp_path / "report.htm"))
    assert (tmp_path / "report.htm").read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")
    pricemon("report", "--format", "csv", "--out", str(tmp_path / "pending.txt"))  # asked for: the suffix is free
    from monitor.report.render import CSV_COLUMNS

    assert (tmp_path / "pending.txt").read_text(encoding="utf-8").splitlines() == [",".join(CSV_COLUMNS)]


def test_a_semicolon_separated_csv_gets_a_hint(tmp_path: Path, pricemon_cli) -> None:
    pricemon = pricemon_cli(None, f"sqlite:///{tmp_path / 'p.db'}")
    products = tmp_path / "products.csv"
    products.write_text("sku;name;price;currency\nA-1;a;10,00;EUR\n", encoding="utf-8")
    result = pricemon("import", "products", str(products), expect=1)
    assert f"{products}:1: header: columns are separated by ';', not ','" in result.stderr
    assert "Traceback" not in result.stderr
    assert pricemon("products", "--json").json() == []
