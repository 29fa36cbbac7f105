"""Configuration: one TOML file plus PRICEMON_* environment -> one frozen, validated `Settings`.

Every setting is declared exactly once below, with its default and its help text (the
`description`); `config/pricemon.toml` documents each of them and a test keeps the two in step.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from monitor.errors import ConfigError
from monitor.redact import redact_apprise_url, redact_url, redact_value, remember_secrets

DEFAULT_DATABASE_URL = "sqlite:///pricemon.db"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Longer durations are mistakes, and far longer ones overflow timedelta or `now + every`.
MAX_DURATION = timedelta(days=3650)


def parse_duration(value: Any) -> timedelta:
    """Read `"15m"`, `"2s"`, `"1h30m"`, `"500ms"` or a number of seconds as a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError('expected a duration such as "15m" or "2s"')
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return _bounded_duration(value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        pos, seconds = 0, 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
            pos = match.end()
        if text and pos == len(text):
            return _bounded_duration(seconds)
    raise ValueError(f'expected a duration such as "15m", "2s" or "1h30m", got {value!r}')


def _bounded_duration(seconds: float) -> timedelta:
    if not math.isfinite(seconds) or seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"a duration longer than {MAX_DURATION.days} days is not supported")
    return timedelta(seconds=seconds)


def _positive_duration(value: Any) -> timedelta:
    duration = parse_duration(value)
    if duration <= timedelta(0):
        raise ValueError(f"must be longer than 0s, got {value!r}")
    return duration


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
# Timeouts: 0 would fail every request at once (or, to some clients, mean "wait for ever").
PositiveDuration = Annotated[timedelta, BeforeValidator(_positive_duration)]


def check_url(value: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    """Accept only absolute URLs of `schemes` with a host (and a valid port, if any).

    The message shows the URL redacted: it may carry a password or a token."""
    expected = " or ".join(f"{s}://" for s in schemes)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - a malformed port raises ValueError here
    except ValueError as exc:
        raise ValueError(f"expected a valid URL ({exc}), got {redact_url(value)!r}") from None
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"expected an {expected} URL, got {redact_url(value)!r}")
    if any(c in value for c in "\r\n\x00"):
        raise ValueError(f"a URL cannot contain line breaks or NUL, got {redact_url(value)!r}")
    return value


def check_http_url(value: str) -> str:
    """Accept only absolute http(s) URLs: pricemon never fetches any other scheme."""
    return check_url(value)


_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def check_header(name: str, value: str) -> None:
    """An HTTP header as RFC 9110 allows it: a token name, a value without CR, LF or NUL."""
    if not _HEADER_NAME.fullmatch(name):
        raise ValueError(f"header name {name!r} is not a valid HTTP header name")
    if any(c in value for c in "\r\n\x00"):
        # the value is not shown: header values are often credentials
        raise ValueError(f"header {name}: the value contains a line break or NUL")


HttpUrl = Annotated[str, BeforeValidator(lambda v: check_http_url(str(v)) if isinstance(v, str) else v)]


def check_currency(value: str) -> str:
    code = value.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise ValueError(f'expected an ISO 4217 currency code such as "EUR", got {value!r}')
    return code


Currency = Annotated[str, BeforeValidator(lambda v: check_currency(v) if isinstance(v, str) else v)]


class Section(BaseModel):
    """A config table: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Selectors(Section):
    price: str | None = Field(None, description="CSS selector of the element holding the price.")
    currency: Currency | None = Field(None, description="ISO 4217 code used when the page does not say.")
    in_stock: str | None = Field(
        None, description='CSS selector, or "text:phrase", whose presence means the item is in stock.'
    )
    out_of_stock: str | None = Field(
        None, description='CSS selector, or "text:phrase", whose presence means the item is out of stock.'
    )
    decimal_separator: str | None = Field(
        None, description='"." or ","; forces how price text is read when the format is ambiguous.'
    )
    json_script: str | None = Field(
        None, description='CSS selector of a script holding the product as JSON, e.g. "script#__NEXT_DATA__".'
    )
    json_price: str | None = Field(None, description="JMESPath expression of the price in json_script's data.")
    json_currency: str | None = Field(None, description="JMESPath expression of the ISO currency code there.")
    json_in_stock: str | None = Field(
        None, description="JMESPath expression of the stock state there (true/false, InStock/OutOfStock, a count)."
    )

    @field_validator("price", "in_stock", "out_of_stock")
    @classmethod
    def _valid_selector(cls, value: str | None) -> str | None:
        if value is None or value.startswith("text:"):
            if value is not None and not value[5:].strip():
                raise ValueError('a "text:" pattern needs a phrase after the colon')
            return value
        from monitor.scrape.extract import validate_selector

        problem = validate_selector(value)
        if problem:
            raise ValueError(f"invalid CSS selector {value!r}: {problem}")
        return value

    @field_validator("json_script")
    @classmethod
    def _valid_script_selector(cls, value: str | None) -> str | None:
        from monitor.scrape.extract import validate_selector

        problem = None if value is None else validate_selector(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("json_price", "json_currency", "json_in_stock")
    @classmethod
    def _valid_expression(cls, value: str | None) -> str | None:
        from monitor.scrape.islands import validate_expression

        problem = None if value is None else validate_expression(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("decimal_separator")
    @classmethod
    def _valid_separator(cls, value: str | None) -> str | None:
        if value is not None and value not in (".", ","):
            raise ValueError(f'expected "." or ",", got {value!r}')
        return value


class Competitor(Section):
    name: str = Field(..., description="Unique name of the competitor, used in listings CSVs and reports.")
    base_url: HttpUrl = Field(..., description="Home page of the competitor's shop (http or https).")
    enabled: bool = Field(True, description="Set to false to stop checking this competitor but keep its history.")
    every: Duration | None = Field(
        None, description='How often listings are checked, e.g. "15m" or "2s". Default 15m unless `cron` is set.'
    )
    cron: str | None = Field(None, description='Crontab expression instead of `every`, e.g. "*/20 6-22 * * *".')
    jitter: Duration = Field(timedelta(0), description="Random delay added to each scheduled sweep.")
    max_concurrency: int = Field(4, ge=1, le=512, description="Maximum requests in flight to this competitor.")
    min_delay: Duration = Field(
        timedelta(seconds=0.5), description="Minimum delay between two requests to this competitor."
    )
    max_delay: Duration = Field(
        timedelta(seconds=60), description="Upper bound of the adaptive delay after 429/503 or slow answers."
    )
    respect_robots_txt: bool = Field(
        True, description="Obey the shop's robots.txt. Only turn off with the shop's permission."
    )
    user_agent: str | None = Field(None, description="User-Agent for this competitor (default: scrape.user_agent).")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra HTTP headers sent to this competitor.")
    proxy: str | None = Field(None, description="Proxy URL for this competitor; credentials in it are never logged.")
    timeout: PositiveDuration | None = Field(
        None, description="Request timeout for this competitor (default: scrape.timeout)."
    )
    selectors: Selectors = Field(
        default_factory=lambda: Selectors(), description="How to read this competitor's pages."
    )
    render: Literal["http", "browser"] = Field(
        "http", description='"browser": render pages in headless Chromium before reading them (pricemon[browser]).'
    )
    platform: Literal["html", "shopify"] = Field(
        "html", description='"shopify": read each product\'s /products/<handle>.js instead of its HTML page.'
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not value.strip() or value != value.strip():
            raise ValueError("a competitor name must be non-empty without surrounding spaces")
        return value

    @field_validator("proxy")
    @classmethod
    def _valid_proxy(cls, value: str | None) -> str | None:
        if value is not None:
            check_url(value, ("http", "https", "socks5", "socks5h"))
        return value

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header_value in value.items():
            check_header(name, header_value)
        return value

    @field_validator("user_agent")
    @classmethod
    def _valid_user_agent(cls, value: str | None) -> str | None:
        if value is not None:
            check_header("User-Agent", value)
        return value

    @field_serializer("headers")
    def _hide_header_values(self, headers: dict[str, str]) -> dict[str, str]:
        # `Authorization: Bearer ...`, cookies, API keys: a header value is shown as *** everywhere.
        return {name: "***" for name in headers}

    @field_serializer("proxy")
    def _hide_proxy_password(self, proxy: str | None) -> str | None:
        return None if proxy is None else redact_url(proxy)

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is not None:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(value, timezone="UTC")
            except ValueError as exc:
                raise ValueError(f"invalid cron expression {value!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_schedule(self) -> Competitor:
        if self.every is not None and self.cron is not None:
            raise ValueError("set either `every` or `cron`, not both")
        if self.every is not None and self.every.total_seconds() < 1:
            raise ValueError("`every` must be at least 1s")
        if self.platform == "shopify" and self.selectors.currency is None:
            # The .js endpoint never names its currency, and /cart.js (which does) is disallowed
            # by Shopify's default robots.txt: the user says it once here.
            raise ValueError('platform = "shopify" needs [competitors.selectors] currency (the .js has none)')
        if self.platform == "shopify" and self.render == "browser":
            raise ValueError('platform = "shopify" reads JSON, which needs no browser: drop render = "browser"')
        return self

    @property
    def interval(self) -> timedelta:
        """How long a successful check stays fresh (the `every`, or 15 minutes for cron schedules)."""
        return self.every or timedelta(minutes=15)


class ScrapeSettings(Section):
    user_agent: str = Field("pricemon/0.1 (+price monitor)", description="Default User-Agent sent to every competitor.")
    timeout: PositiveDuration = Field(timedelta(seconds=20), description="Default request timeout.")
    max_body_bytes: int = Field(5_000_000, ge=1024, description="Larger bodies are dropped as invalid_content.")
    max_redirects: int = Field(5, ge=0, le=30, description="Redirects followed per request (http/https only).")
    retries: int = Field(3, ge=0, le=10, description="Retries on timeouts, connection errors, 5xx, 408 and 429.")
    backoff_base: Duration = Field(timedelta(seconds=0.5), description="First retry delay; doubles each retry.")
    backoff_max: Duration = Field(timedelta(seconds=30), description="Longest delay between two retries.")
    slow_response: Duration = Field(
        timedelta(seconds=5), description="Answers slower than this make the adaptive delay back off."
    )
    suspicious_change: float = Field(
        0.5, gt=0, description="A price moving more than this share from the last one is flagged suspicious."
    )
    batch_size: int = Field(500, ge=1, description="Listings per batch; each batch commits on its own.")
    batch_max_wait: PositiveDuration = Field(
        timedelta(seconds=1),
        description="A batch commits when it is this old even if not full, so changes reach the store (and the "
        "daemon's repricing) within about this long of being checked.",
    )
    workers: int = Field(0, ge=0, le=64, description="Worker processes for a sweep; 0 means one per CPU core.")
    max_connections: int = Field(512, ge=1, description="Requests in flight across all competitors per worker.")
    allowed_networks: tuple[str, ...] = Field(
        (),
        description="Non-public networks (CIDRs) any competitor may be fetched from; a competitor whose base_url"
        " is an address in such a network may always use that network. Link-local and cloud-metadata"
        " addresses are never contacted.",
    )

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from monitor.scrape.addresses import parse_networks

        return tuple(str(network) for network in parse_networks(value))

    browser_pages: int = Field(
        4, ge=1, le=64, description='Pages rendered at once per worker for competitors with render = "browser".'
    )
    browser_executable: str = Field(
        "/usr/bin/chromium", description="The Chromium that renders pages (never downloaded by pricemon)."
    )

    @field_validator("user_agent")
    @classmethod
    def _valid_user_agent(cls, value: str) -> str:
        check_header("User-Agent", value)
        return value

    lease_ttl: Duration = Field(
        timedelta(seconds=60),
        ge=timedelta(seconds=1),
        description="How long a sweep's claim on a competitor lasts unless its heartbeat renews it.",
    )


class SchedulerSettings(Section):
    grace_period: Duration = Field(
        timedelta(seconds=30), description="On SIGTERM/SIGINT, how long batches in flight may take to commit."
    )
    suggest_every: Duration = Field(
        timedelta(minutes=15), description="How often `pricemon run` recomputes suggestions."
    )
    reprice_on_change: bool = Field(
        True,
        description="`pricemon run` reprices the products of every sweep batch that changed a competitor's "
        "price or stock at once (auto-approved prices applied and sent); suggest_every stays as the catch-up.",
    )
    staleness_limit: Duration = Field(
        timedelta(hours=6),
        description="`pricemon status` fails when a competitor had no successful check for this long.",
    )
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="Serve Prometheus metrics on this port (off when unset)."
    )
    metrics_host: str = Field("127.0.0.1", description="Address the metrics endpoint binds to.")
    database_retry_max: Duration = Field(
        timedelta(seconds=60), description="Longest wait between retries while the database is unavailable."
    )


AlertCondition = Literal[
    "undercut",
    "price_drop",
    "price_rise",
    "all_time_low",
    "back_in_stock",
    "out_of_stock",
    "new_suggestion",
    "scrape_failing",
]
ALERT_CONDITIONS: tuple[str, ...] = get_args(AlertCondition)
CHANNEL_TYPES = ("webhook", "email", "apprise")


class AlertChannel(Section):
    """Where alerts go: a JSON webhook, an SMTP mailbox, or any service Apprise supports.

    Secrets are never written here: they are read at send time from the environment variables
    named by `secret_env`, `password_env` and `apprise_urls_env`.
    """

    name: str = Field(..., min_length=1, description="Unique name of the channel, used in the rules' `channels`.")
    type: Literal["webhook", "email", "apprise"] = Field(..., description='"webhook", "email" or "apprise".')
    url: HttpUrl | None = Field(None, description="webhook: the URL that receives a JSON POST per message.")
    secret_header: str = Field(
        "X-Pricemon-Secret", description="webhook: header that carries the secret from `secret_env`."
    )
    secret_env: str | None = Field(
        None, description="webhook: environment variable holding the secret header's value."
    )
    timeout: PositiveDuration = Field(timedelta(seconds=10), description="How long one delivery attempt may take.")
    smtp_host: str | None = Field(None, description="email: SMTP server host name.")
    smtp_port: int = Field(25, ge=1, le=65535, description="email: SMTP server port.")
    security: Literal["none", "starttls", "ssl"] = Field(
        "none", description='email: "none", "starttls" or "ssl" (implicit TLS, usually port 465).'
    )
    username: str | None = Field(None, description="email: SMTP login name (no login when unset).")
    password_env: str | None = Field(None, description="email: environment variable holding the SMTP password.")
    sender: str | None = Field(None, description="email: the From address.")
    recipients: tuple[str, ...] = Field((), description="email: the To addresses.")
    apprise_urls: tuple[str, ...] = Field(
        (), description="apprise: service URLs (slack://, tgram://, ntfy://, ...); redacted in every output."
    )
    apprise_urls_env: str | None = Field(
        None, description="apprise: environment variable holding more URLs, separated by spaces or commas."
    )

    @field_validator("secret_header")
    @classmethod
    def _valid_secret_header(cls, value: str) -> str:
        check_header(value, "")
        return value

    @model_validator(mode="after")
    def _complete_for_its_type(self) -> AlertChannel:
        if self.type == "webhook" and not self.url:
            raise ValueError(f"channel {self.name!r}: a webhook needs `url`")
        if self.type == "email" and not (self.smtp_host and self.sender and self.recipients):
            raise ValueError(f"channel {self.name!r}: email needs `smtp_host`, `sender` and `recipients`")
        if self.type == "email" and self.password_env and not self.username:
            raise ValueError(f"channel {self.name!r}: `password_env` needs `username`")
        if self.type == "apprise" and not (self.apprise_urls or self.apprise_urls_env):
            raise ValueError(f"channel {self.name!r}: apprise needs `apprise_urls` or `apprise_urls_env`")
        return self

    @field_serializer("apprise_urls")
    def _hide_apprise_tokens(self, urls: tuple[str, ...]) -> list[str]:
        # `pricemon config check` prints the settings: the tokens in these URLs must not show.
        return [redact_apprise_url(u) for u in urls]

    @field_serializer("url")
    def _hide_url_password(self, url: str | None) -> str | None:
        return None if url is None else redact_url(url)


class AlertingSettings(Section):
    channels: tuple[AlertChannel, ...] = Field(
        (), description="Delivery channels, one [[alerting.channels]] each; rules name them."
    )
    retry_base: Duration = Field(
        timedelta(seconds=30), description="Wait before retrying a failed delivery; doubles on each failure."
    )
    retry_max: Duration = Field(
        timedelta(hours=1), description="Longest wait between retries; undelivered alerts are never dropped."
    )
    max_events_per_message: int = Field(
        50, ge=1, le=1000, description="Events of one sweep are grouped into one message per channel, up to this many."
    )

    @field_validator("channels")
    @classmethod
    def _unique_channel_names(cls, value: tuple[AlertChannel, ...]) -> tuple[AlertChannel, ...]:
        names = [c.name for c in value]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate channel name(s): {', '.join(duplicates)}")
        return value

    def channel(self, name: str) -> AlertChannel | None:
        return next((c for c in self.channels if c.name == name), None)


class AlertRule(Section):
    name: str = Field(
        ..., min_length=1, max_length=100, description="Unique name of the rule (also for `alerts test`)."
    )
    condition: AlertCondition = Field(..., description="What fires the rule: " + ", ".join(ALERT_CONDITIONS) + ".")
    channels: tuple[str, ...] = Field(..., min_length=1, description="Names of the [[alerting.channels]] to notify.")
    enabled: bool = Field(True, description="Set to false to keep the rule but stop evaluating it.")
    competitors: tuple[str, ...] = Field((), description="Only these competitors (default: all).")
    skus: tuple[str, ...] = Field((), description="Only these SKUs of ours (default: all).")
    tags: tuple[str, ...] = Field((), description="Only products carrying one of these tags (default: all).")
    percent: Decimal | None = Field(
        None,
        ge=0,
        description="undercut: by more than this % of our price; price_drop/price_rise: moved more than this %"
        " (default 0); new_suggestion: impact above this %.",
    )
    amount: Decimal | None = Field(None, ge=0, description="undercut: by more than this amount of our currency.")
    failing_for: Duration = Field(
        timedelta(hours=1), description="scrape_failing: how long without a successful check before it fires."
    )
    scope: Literal["competitor", "listing"] = Field(
        "competitor", description='scrape_failing: "competitor" (no listing of it succeeds) or "listing" (each one).'
    )
    quiet_period: Duration = Field(
        timedelta(hours=1),
        description="After an alert about a subject (listing, competitor, product), others wait this long.",
    )

    @field_validator("amount", mode="before")
    @classmethod
    def _amount_is_money(cls, value: object) -> object:
        # The one range of money (monitor.money), before pydantic makes "1e5" or 1e308 a Decimal.
        from monitor.money import check_money, parse_amount

        if isinstance(value, str):
            return parse_amount(value)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return check_money(Decimal(str(value)))
        return value

    @model_validator(mode="after")
    def _threshold_fits_condition(self) -> AlertRule:
        if self.amount is not None and self.condition != "undercut":
            raise ValueError(f"rule {self.name!r}: `amount` only applies to undercut")
        if self.amount is not None and self.percent is not None:
            raise ValueError(f"rule {self.name!r}: set `percent` or `amount`, not both")
        if self.percent is not None and self.condition in (
            "all_time_low",
            "back_in_stock",
            "out_of_stock",
            "scrape_failing",
        ):
            raise ValueError(f"rule {self.name!r}: `percent` does not apply to {self.condition}")
        return self


GUARDRAILS = ("margin_floor", "map_floor", "min_max", "max_change", "round")


class Assignment(Section):
    """Which strategies price a product, which offers count, and the guardrails after them.

    `[pricing.default]` applies to every product; `[pricing.tags.<tag>]` and `[pricing.skus.<sku>]`
    override only the keys they set (SKU over tag over default).
    """

    strategies: tuple[str, ...] = Field(
        ("match_lowest",), description="Strategy chain: the first one that suggests a price wins."
    )
    options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Options per strategy, e.g. { undercut = { percent = 1 } }."
    )
    auto_approve: bool = Field(False, description="Apply these suggestions without review (within guardrails).")
    in_stock_only: bool = Field(True, description="Only offers that are in stock count.")
    max_age: Duration | None = Field(
        timedelta(days=2), description="Offers not confirmed for longer than this do not count (unset: no limit)."
    )
    ignore_suspicious: bool = Field(True, description="Offers flagged suspicious (not yet confirmed) do not count.")
    include: tuple[str, ...] = Field((), description="Only these competitors count (empty: all).")
    exclude: tuple[str, ...] = Field((), description="These competitors never count.")
    other_currencies: str = Field(
        "convert", description='"convert" through [pricing] rates (skipped when no rate), or "skip".'
    )
    guardrails: tuple[str, ...] = Field(
        ("margin_floor", "map_floor", "min_max", "max_change", "round"),
        description="Guardrails applied after the strategy; all hold on the final price, rounding comes last.",
    )
    min_margin: float = Field(0.0, ge=0, description="Margin floor: never below cost plus this percentage.")
    max_change: float | None = Field(
        None, gt=0, description="Largest change of our price per suggestion, in percent (unset: no limit)."
    )
    rounding: str = Field(".99", description='".99", ".95", "whole", "ladder" or "none".')
    rounding_direction: str = Field(
        "down", description='"down", "up" or "nearest" first; the other way if that breaks a bound or the move.'
    )
    ladder: tuple[str, ...] = Field((), description='Price points for rounding = "ladder", e.g. ["9.99", "14.99"].')

    @field_validator("guardrails")
    @classmethod
    def _known_guardrails(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name not in GUARDRAILS:
                raise ValueError(f"unknown guardrail {name!r}; expected some of {', '.join(GUARDRAILS)}")
        return value

    @field_validator("strategies")
    @classmethod
    def _some_strategy(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("name at least one strategy")
        return value

    @field_validator("other_currencies")
    @classmethod
    def _currency_mode(cls, value: str) -> str:
        if value not in ("convert", "skip"):
            raise ValueError(f'expected "convert" or "skip", got {value!r}')
        return value

    @field_validator("rounding")
    @classmethod
    def _rounding(cls, value: str) -> str:
        if value not in (".99", ".95", "whole", "ladder", "none"):
            raise ValueError(f'expected ".99", ".95", "whole", "ladder" or "none", got {value!r}')
        return value

    @field_validator("rounding_direction")
    @classmethod
    def _direction(cls, value: str) -> str:
        if value not in ("down", "up", "nearest"):
            raise ValueError(f'expected "down", "up" or "nearest", got {value!r}')
        return value

    @field_validator("ladder")
    @classmethod
    def _ladder(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from monitor.money import parse_amount

        for point in value:
            if parse_amount(str(point)) <= 0:
                raise ValueError(f"ladder prices must be positive, got {point!r}")
        return tuple(str(p) for p in value)


class PricingSettings(Section):
    timeout: PositiveDuration = Field(
        timedelta(seconds=5), description="Longest a strategy may take for one product."
    )
    rates: dict[str, float] = Field(
        default_factory=dict,
        description='Currency rates for converting offers, "FROM:TO" = rate, e.g. { "USD:EUR" = 0.92 }.',
    )
    default: Assignment = Field(default_factory=Assignment, description="Strategy assignment for every product.")
    tags: dict[str, Assignment] = Field(default_factory=dict, description="Overrides for products with a tag.")
    skus: dict[str, Assignment] = Field(default_factory=dict, description="Overrides for single SKUs.")
    batch_size: int = Field(2000, ge=1, description="Products priced and stored per batch by `pricemon suggest`.")
    workers: int = Field(
        0, ge=0, le=64, description="Worker processes that run the strategies (0 = one per CPU, at most 8)."
    )

    @field_validator("rates")
    @classmethod
    def _rate_pairs(cls, value: dict[str, float]) -> dict[str, float]:
        for pair, rate in value.items():
            if not re.fullmatch(r"[A-Z]{3}:[A-Z]{3}", pair):
                raise ValueError(f'rate keys look like "USD:EUR", got {pair!r}')
            if rate <= 0:
                raise ValueError(f"rate {pair} must be positive")
        return value


class FeedSettings(Section):
    csv_path: Path | None = Field(
        None, description="Write sku,price,currency,updated_at of every active product here after each apply."
    )
    webhook_url: HttpUrl | None = Field(None, description="POST applied price changes as JSON to this URL.")
    secret_header: str = Field("X-Pricemon-Secret", description="Header carrying the webhook secret.")
    secret_env: str | None = Field(
        None, description="Name of the environment variable holding the webhook secret (never logged)."
    )
    retries: int = Field(3, ge=0, le=10, description="Retries of a failed webhook POST within one send.")
    backoff: Duration = Field(timedelta(seconds=1), description="First delay between retries; doubles each time.")
    timeout: PositiveDuration = Field(timedelta(seconds=10), description="Webhook request timeout.")
    batch_size: int = Field(500, ge=1, description="Price changes per webhook POST.")

    @field_serializer("webhook_url")
    def _hide_webhook_credentials(self, url: str | None) -> str | None:
        return None if url is None else redact_url(url)

    @field_validator("secret_header")
    @classmethod
    def _valid_secret_header(cls, value: str) -> str:
        check_header(value, "")
        return value


class DemandSettings(Section):
    fit_every: PositiveDuration = Field(
        timedelta(days=1), description="How often `pricemon run` refits the demand models from our sales."
    )
    min_observations: int = Field(
        30,
        ge=3,
        description="Days with sales a product needs for its own elasticity; fewer is thin_data (pooled).",
    )


class Settings(Section):
    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL; PRICEMON_DATABASE_URL or --database-url override it.",
    )
    strategies_dir: Path | None = Field(
        None, description="Folder whose *.py files are loaded as strategy plugins (also --strategies-dir)."
    )
    scrape: ScrapeSettings = Field(default_factory=lambda: ScrapeSettings(), description="Fetching defaults.")
    scheduler: SchedulerSettings = Field(default_factory=lambda: SchedulerSettings(), description="The daemon.")
    competitors: tuple[Competitor, ...] = Field((), description="The shops to watch, one [[competitors]] each.")
    pricing: PricingSettings = Field(default_factory=PricingSettings, description="Pricing strategies.")
    feed: FeedSettings = Field(default_factory=FeedSettings, description="The price feed out.")
    alerting: AlertingSettings = Field(default_factory=AlertingSettings, description="Alert channels and delivery.")
    alerts: tuple[AlertRule, ...] = Field((), description="Alert rules, one [[alerts]] each.")
    demand: DemandSettings = Field(default_factory=DemandSettings, description="Demand models from our own sales.")

    source: str | None = Field(None, exclude=True, description="File the settings were read from (not a key).")

    @field_validator("competitors")
    @classmethod
    def _unique_names(cls, value: tuple[Competitor, ...]) -> tuple[Competitor, ...]:
        seen: set[str] = set()
        for competitor in value:
            if competitor.name in seen:
                raise ValueError(f"duplicate competitor name {competitor.name!r}")
            seen.add(competitor.name)
        return value

    @model_validator(mode="after")
    def _alert_rules_fit(self) -> Settings:
        names = [rule.name for rule in self.alerts]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate alert rule name(s): {', '.join(duplicates)}")
        for rule in self.alerts:
            unknown = [c for c in rule.channels if self.alerting.channel(c) is None]
            if unknown:
                raise ValueError(f"alert rule {rule.name!r}: unknown channel(s) {', '.join(unknown)}")
        return self

    def competitor(self, name: str) -> Competitor | None:
        return next((c for c in self.competitors if c.name == name), None)

    @field_serializer("database_url")
    def _hide_database_password(self, url: str) -> str:
        return redact_url(url)


_PLAIN_HEADERS = frozenset({"accept", "accept-language", "accept-encoding", "cache-control", "pragma", "dnt"})
# Config keys naming an environment variable that holds a secret, per section.
SECRET_ENV_KEYS = ("secret_env", "password_env", "apprise_urls_env")


def secret_env_vars(settings: Settings) -> list[tuple[str, str]]:
    """(key path, variable name) of every environment variable the config reads a secret from."""
    found = []
    if settings.feed.secret_env:
        found.append(("feed.secret_env", settings.feed.secret_env))
    for index, channel in enumerate(settings.alerting.channels):
        for key in SECRET_ENV_KEYS:
            name = getattr(channel, key, None)
            if name:
                found.append((f"alerting.channels[{index}].{key}", name))
    return found


def configured_secrets(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    """Every secret value the settings hold or point to: passwords and tokens in URLs, header
    values, Apprise URLs and the values of the secret environment variables."""
    from urllib.parse import parse_qsl

    from monitor.redact import redact_url as _redact

    def of_url(url: str | None) -> list[str]:
        if not url or _redact(url) == url:
            return []
        values = [url]
        try:
            parts = urlsplit(url)
        except ValueError:
            return values
        if "@" in parts.netloc:
            userinfo = parts.netloc.rpartition("@")[0]
            user, _, password = userinfo.partition(":")
            values += [password] if password else [user]
        values += [v for k, v in parse_qsl(parts.query) if _redact(f"http://h/?{k}=x") != f"http://h/?{k}=x"]
        return values

    secrets: list[str] = of_url(settings.database_url) + of_url(settings.feed.webhook_url)
    for competitor in settings.competitors:
        # Every header value is shown as ***; in free text (logs, errors) only those that can be
        # credentials are searched for, so `Accept: text/html` does not hide every "text/html".
        secrets += [v for k, v in competitor.headers.items() if k.lower() not in _PLAIN_HEADERS]
        secrets += of_url(competitor.proxy)
    for channel in settings.alerting.channels:
        secrets += of_url(channel.url) + list(channel.apprise_urls)
        for url in channel.apprise_urls:
            # the tokens inside (slack://T0/B0/XXXX): long parts that are not host names
            secrets += [p for p in re.split(r"[/:@?&=]+", url.partition("://")[2]) if len(p) >= 12 and "." not in p]
    for _key, name in secret_env_vars(settings):
        value = environ.get(name)
        if value:
            secrets.append(value)
            secrets += [v.strip() for v in re.split(r"[\s,]+", value) if v.strip()]
    return secrets


_NAMED_TABLES = {"competitors": "competitor", "channels": "channel", "alerts": "rule"}


def _location(loc: tuple[str | int, ...], data: Mapping[str, Any] | None = None) -> tuple[str, str]:
    """The key path (`competitors[2].base_url`) and the names of the named tables on the way
    (` (competitor 'acme')`), which the message ends with."""
    out = ""
    names: list[str] = []
    node: Any = data
    previous: str | int | None = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list | tuple) and 0 <= part < len(node) else None
            name = node.get("name") if isinstance(node, dict) else None
            kind = _NAMED_TABLES.get(str(previous))
            if kind and isinstance(name, str) and name:
                names.append(f"{kind} {name!r}")
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
        previous = part
    return out or "(top level)", f" ({', '.join(names)})" if names else ""


def _describe(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    message = str(error.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")


def settings_from_mapping(data: Mapping[str, Any], *, source: str = "<config>") -> Settings:
    """Validate already-parsed config data; errors name the source and every bad key path."""
    try:
        return Settings.model_validate({**data, "source": source})
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            loc = tuple(p for p in error["loc"] if not str(p).startswith("function-"))
            value = error.get("input")
            described = _describe(error)
            quiet = error.get("type") == "missing" or isinstance(value, dict | list) or "got " in described
            shown = "" if quiet else f" (got {redact_value(value)!r})"
            if error.get("type") in ("string_type", "dict_type") or "header" in described:
                shown = ""  # a header value or a secret may be the bad input: never echo it
            path, names = _location(loc, data)
            lines.append(f"{source}: {path}: {described}{shown}{names}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None


def load_settings(
    path: str | Path | None = None,
    *,
    database_url: str | None = None,
    strategies_dir: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read the config file (argument, else PRICEMON_CONFIG, else none) and apply the overrides.

    Precedence for the database: `database_url` argument > PRICEMON_DATABASE_URL > the file >
    `sqlite:///pricemon.db` in the working directory.
    """
    env = os.environ if environ is None else environ
    path = path or env.get("PRICEMON_CONFIG") or None
    data: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"{source}: config file not found") from None
        except IsADirectoryError:
            raise ConfigError(f"{source}: is a directory, expected a TOML file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read config: {exc.strerror}") from None
    override = database_url or env.get("PRICEMON_DATABASE_URL")
    if override:
        data["database_url"] = override
    if strategies_dir:
        data["strategies_dir"] = str(strategies_dir)
    settings = settings_from_mapping(data, source=source)
    # From now on every log line and redacted message hides these values.
    remember_secrets(configured_secrets(settings, env))
    return settings


__all__ = [
    "ALERT_CONDITIONS",
    "DEFAULT_DATABASE_URL",
    "AlertChannel",
    "AlertRule",
    "AlertingSettings",
    "Competitor",
    "Duration",
    "SchedulerSettings",
    "ScrapeSettings",
    "Selectors",
    "Settings",
    "check_url",
    "configured_secrets",
    "load_settings",
    "parse_duration",
    "redact_url",
    "secret_env_vars",
    "settings_from_mapping",
]
