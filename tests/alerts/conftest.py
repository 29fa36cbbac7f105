"""Real things the alerts talk to: a recording webhook server and an SMTP server on 127.0.0.1,
and a store with products and listings whose sweeps are recorded as a scraper would."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from monitor.settings import Competitor as CompetitorConfig
from monitor.settings import Settings, settings_from_mapping
from monitor.store.catalog import sync_competitors
from monitor.store.database import Store, open_store
from monitor.store.history import CheckResult, record_checks
from monitor.store.models import Listing, Product, utcnow
from monitor.store.runs import finish_run, start_run

EVERY = timedelta(minutes=15)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Mailbox:
    host: str
    port: int
    messages: list[Any] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)


@pytest.fixture
def smtp_server() -> Iterator[Mailbox]:
    """aiosmtpd on 127.0.0.1 accepting LOGIN/PLAIN for user "pricemon" with password "s3cret-smtp-pw"."""
    from email import message_from_bytes

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    box = Mailbox("127.0.0.1", free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            box.messages.append(message_from_bytes(envelope.content))
            return "250 OK"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            user, password = auth_data.login.decode(), auth_data.password.decode()
            box.logins.append((user, password))
            if user == "pricemon" and password == "s3cret-smtp-pw":
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    controller = Controller(
        Handler(), hostname=box.host, port=box.port, authenticator=authenticator, auth_require_tls=False
    )
    controller.start()
    yield box
    controller.stop()


def make_settings(**data: Any) -> Settings:
    base: dict[str, Any] = {
        "competitors": [
            {"name": "acme", "base_url": "http://127.0.0.1:9/"},
            {"name": "bolt", "base_url": "http://127.0.0.1:9/"},
        ]
    }
    return settings_from_mapping({**base, **data}, source="<test>")


@dataclass
class Shop:
    """A store with products A (tags: bestseller) and B (tags: clearance), each listed at acme
    and bolt; `listing[(sku, competitor)]` is the listing id."""

    store: Store
    url: str
    listing: dict[tuple[str, str], int]

    def sweep(self, *results: CheckResult, competitors: tuple[str, ...] = ("acme", "bolt")) -> int:
        with self.store.session() as session:
            run_id = start_run(session, trigger="test", competitors=list(competitors))
            record_checks(session, results, run_id=run_id, interval=EVERY, suspicious_change=0.5)
            finish_run(session, run_id, counts={})
        return run_id

    def seen(
        self,
        sku: str,
        competitor: str,
        price: str | None,
        at: datetime,
        *,
        in_stock: bool | None = True,
        currency: str = "EUR",
    ) -> CheckResult:
        return CheckResult(
            listing_id=self.listing[(sku, competitor)],
            outcome="observed",
            checked_at=at,
            price=None if price is None else Decimal(price),
            currency=currency,
            in_stock=in_stock,
        )

    def failed(self, sku: str, competitor: str, at: datetime, outcome: str = "timeout") -> CheckResult:
        return CheckResult(
            listing_id=self.listing[(sku, competitor)], outcome=outcome, checked_at=at, error=f"{outcome} after 20s"
        )


def build_shop(url: str, *, added: datetime | None = None) -> Shop:
    store = open_store(url, migrate=True)
    listing: dict[tuple[str, str], int] = {}
    added = added or utcnow() - timedelta(days=2)
    with store.session() as session:
        ids = sync_competitors(
            session,
            [
                CompetitorConfig(name="acme", base_url="http://127.0.0.1:9/"),
                CompetitorConfig(name="bolt", base_url="http://127.0.0.1:9/"),
            ],
        )
        for sku, tags in (("A", ["bestseller"]), ("B", ["clearance"])):
            product = Product(sku=sku, name=f"Item {sku}", currency="EUR", price=Decimal("100.00"), tags=tags)
            session.add(product)
            session.flush()
            for name, competitor_id in ids.items():
                row = Listing(
                    product_id=product.id,
                    competitor_id=competitor_id,
                    url=f"http://127.0.0.1:9/{name}/{sku}",
                    created_at=added,
                )
                session.add(row)
                session.flush()
                listing[(sku, name)] = row.id
    return Shop(store, url, listing)


@pytest.fixture
def shop(database_url: str) -> Iterator[Shop]:
    shop = build_shop(database_url)
    yield shop
    shop.store.dispose()


@pytest.fixture
def sqlite_shop(sqlite_url: str) -> Iterator[Shop]:
    shop = build_shop(sqlite_url)
    yield shop
    shop.store.dispose()
