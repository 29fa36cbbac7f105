"""Config loading: defaults, overrides, and errors that name the file, key path and expectation."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel

from monitor.errors import ConfigError
from monitor.settings import DEFAULT_DATABASE_URL, Settings, load_settings, parse_duration, redact_url

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "pricemon.toml"


def test_no_config_means_sqlite_in_the_working_directory() -> None:
    settings = load_settings(None, environ={})
    assert settings.database_url == DEFAULT_DATABASE_URL == "sqlite:///pricemon.db"
    assert settings.competitors == ()


def test_the_shipped_example_loads() -> None:
    settings = load_settings(EXAMPLE, environ={})
    assert settings.competitors[0].name == "acme"
    assert settings.competitors[0].selectors.price == ".product-price .now"


def test_database_url_precedence(write_config) -> None:
    path = write_config('database_url = "sqlite:///from-file.db"\n')
    assert load_settings(path, environ={}).database_url == "sqlite:///from-file.db"
    env = {"PRICEMON_DATABASE_URL": "sqlite:///from-env.db", "PRICEMON_CONFIG": str(path)}
    assert load_settings(None, environ=env).database_url == "sqlite:///from-env.db"
    assert load_settings(None, database_url="sqlite:///flag.db", environ=env).database_url == "sqlite:///flag.db"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("colour = 1\n", "colour: unknown key"),
        ('[scrape]\ntimeout = "soon"\n', "scrape.timeout: expected a duration"),
        ('[scrape]\nretries = "three"\n', "scrape.retries: Input should be a valid integer"),
        (
            '[[competitors]]\nname = "a"\nbase_url = "ftp://x.example"\n',
            "competitors[0].base_url: expected an http:// or https:// URL",
        ),
        ('[[competitors]]\nname = "a"\n', "competitors[0].base_url: required key is missing"),
        (
            '[[competitors]]\nname = "a"\nbase_url = "http://x.example"\n[[competitors]]\nname = "a"\nbase_url = "http://y.example"\n',
            "competitors: duplicate competitor name 'a'",
        ),
        (
            '[[competitors]]\nname = "a"\nbase_url = "http://x.example"\n[competitors.selectors]\nprice = "div[["\n',
            "competitors[0].selectors.price: invalid CSS selector",
        ),
        (
            '[[competitors]]\nname = "a"\nbase_url = "http://x.example"\n[competitors.selectors]\nprise = ".p"\n',
            "competitors[0].selectors.prise: unknown key",
        ),
        (
            '[[competitors]]\nname = "a"\nbase_url = "http://x.example"\ncron = "every day"\n',
            "competitors[0].cron: invalid cron expression",
        ),
        (
            '[[competitors]]\nname = "a"\nbase_url = "http://x.example"\nevery = "1s"\ncron = "* * * * *"\n',
            "set either",
        ),
        ("this is not toml", "not valid TOML"),
    ],
)
def test_invalid_config_names_file_key_and_expectation(write_config, text: str, expected: str) -> None:
    path = write_config(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    message = str(info.value)
    assert str(path) in message
    assert expected in message


def test_missing_config_file() -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: config file not found"):
        load_settings("nope.toml", environ={})


@pytest.mark.parametrize(
    ("text", "seconds"), [("2s", 2), ("15m", 900), ("1h30m", 5400), ("500ms", 0.5), (3, 3), ("1d", 86400)]
)
def test_durations(text, seconds) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_secrets_are_redacted() -> None:
    assert redact_url("postgresql://u:hunter2@db/x") == "postgresql://u:***@db/x"
    assert redact_url("http://proxy:3128") == "http://proxy:3128"


def _setting_paths(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str]]:
    paths = []
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        annotation = field.annotation
        inner = getattr(annotation, "__args__", (annotation,))
        section = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), None)
        paths.append((prefix + name, field.description or ""))
        if section is not None:
            paths += _setting_paths(section, f"{prefix}{name}.")
    return paths


def test_every_setting_is_declared_with_help_and_documented_in_the_example() -> None:
    example = EXAMPLE.read_text(encoding="utf-8")
    undocumented = []
    for path, description in _setting_paths(Settings):
        assert description, f"setting {path} has no description"
        key = path.rsplit(".", 1)[-1]
        if not re.search(rf"^\s*#?\s*\[*(?:\w+\.)*{re.escape(key)}\b", example, re.MULTILINE):
            undocumented.append(path)
    assert not undocumented, f"settings missing from config/pricemon.toml: {undocumented}"


# --- bounds, and what a shown or logged value hides --------------------------------------------


@pytest.mark.parametrize("value", ["99999999999d", 1e400, float("nan"), "3651d", 10**30])
def test_durations_beyond_ten_years_are_errors_not_overflows(value) -> None:
    with pytest.raises(ValueError, match=r"longer than 3650 days|expected a duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:hunter2@db/x", "postgresql://u:***@db/x"),
        ("https://hooks.example/in?token=abc123&shop=1", "https://hooks.example/in?token=***&shop=1"),
        (
            "https://hooks.example/in?X-Api-Key=abc&Signature=s&monkey=1",
            "https://hooks.example/in?X-Api-Key=***&Signature=***&monkey=1",
        ),
        ("https://tok3n@hooks.example/", "https://***@hooks.example/"),
        ("postgresql://postgres@127.0.0.1/db", "postgresql://postgres@127.0.0.1/db"),
        ("http://user:pw@[::1/x?token=t", "http://***@[::1/x?token=***"),  # not parsable, still hidden
        ("http://127.0.0.1:8080/p/1", "http://127.0.0.1:8080/p/1"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_remembered_secrets_and_urls_are_hidden_in_text_and_log_lines() -> None:
    import io
    import logging

    from monitor.redact import RedactingFilter, redact_text, remember_secrets

    remember_secrets(["Bearer t0ken-in-a-header", "ab"])  # too short to be treated as a secret
    text = "sent Bearer t0ken-in-a-header to http://u:pw9@h/x?access_token=zz (ab)"
    assert redact_text(text) == "sent *** to http://u:***@h/x?access_token=*** (ab)"

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    log = logging.getLogger("tests.redact")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("POST %s failed", "http://u:pw9@h/x", extra={"header": "Bearer t0ken-in-a-header"})
        try:
            raise RuntimeError("Bearer t0ken-in-a-header rejected")
        except RuntimeError:
            log.exception("delivery failed")
    finally:
        log.removeHandler(handler)
    out = stream.getvalue()
    assert "pw9" not in out and "t0ken" not in out
    assert "POST http://u:***@h/x failed" in out and "RuntimeError: *** rejected" in out


def test_settings_show_header_values_and_credentials_as_stars() -> None:
    from monitor.settings import settings_from_mapping

    settings = settings_from_mapping(
        {
            "competitors": [
                {"name": "a", "base_url": "http://127.0.0.1/", "headers": {"Authorization": "Bearer xyz"},
                 "proxy": "http://p:secretpw@127.0.0.1:3128"}
            ],
            "feed": {"webhook_url": "https://u:hookpw@hooks.example/x?token=tk1"},
        }
    )
    shown = str(settings.model_dump(mode="json"))
    assert "Bearer xyz" not in shown and "secretpw" not in shown and "hookpw" not in shown and "tk1" not in shown
    assert settings.competitors[0].headers == {"Authorization": "Bearer xyz"}  # the real value is kept for use


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("@SUM(1+1)", "'@SUM(1+1)"),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("\tTab", "'\tTab"),
        ("\rCR", "'\rCR"),
        ("-5.00", "-5.00"),
        ("+3", "+3"),
        ("-0.5e3", "-0.5e3"),
        ("Kettle", "Kettle"),
        (12, 12),
    ],
)
def test_csv_cells_that_a_spreadsheet_would_run_are_quoted(cell, written) -> None:
    from monitor.safecsv import neutralise_cell

    assert neutralise_cell(cell) == written
