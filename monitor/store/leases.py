"""Sweep leases: one process sweeps a competitor at a time, across processes and machines.

A lease is the `sweep_leases` row of a competitor. It is taken with one atomic statement
(`INSERT ... ON CONFLICT DO UPDATE ... WHERE` the lease has expired or is already ours), renewed
by a heartbeat thread of its holder every third of its time to live while the sweep runs, and
deleted when the sweep ends. A holder that dies stops renewing: once `expires_at` passes, anyone
may take the lease over, and the heartbeat of a holder that was only stalled then finds the lease
gone and stops its sweep. A holder on this machine whose process no longer exists is known to be
dead at once, so a crashed local sweep does not block its competitor for a whole time to live.

Times come from the database's clock on PostgreSQL (the holders may run on machines whose
clocks differ) and from this machine's on SQLite (which lives on one machine).

A holder is "run:RUN_ID@HOST:PID": the run it sweeps for, and the process doing it. A worker of a
cluster takes the same lease for the chunk it runs (RUN_ID is then the chunk's run).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, cast

from sqlalchemy import Table, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from monitor.store.database import Store
from monitor.store.models import SweepLease, utcnow

logger = logging.getLogger(__name__)

_LEASES = cast(Table, SweepLease.__table__)
#: the inode of the first PID namespace (PROC_PID_INIT_INO): processes outside any container
_INITIAL_PID_NAMESPACE = 0xEFFFFFFC
_HOLDER = re.compile(r"^run:(?P<run>\d+|-)@(?P<host>.+):(?P<pid>\d+)$")


@cache
def this_host() -> str:
    """This machine's name, and the PID namespace when it is not the machine's own.

    Two containers may share a host name (host networking) while their process ids are separate
    spaces; a PID of one says nothing about the other, so their holders must not look alike.
    """
    host = socket.gethostname()
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return host
    return host if namespace == _INITIAL_PID_NAMESPACE else f"{host}/pidns-{namespace}"


@dataclass(frozen=True)
class Holder:
    """Who holds a lease: the run it sweeps for, and the process (host and pid) doing it."""

    run_id: int | None
    host: str
    pid: int

    @classmethod
    def this_process(cls, run_id: int | None) -> Holder:
        return cls(run_id, this_host(), os.getpid())

    @classmethod
    def parse(cls, text: str | None) -> Holder | None:
        match = _HOLDER.match(text or "")
        if match is None:
            return None
        run = match["run"]
        return cls(None if run == "-" else int(run), match["host"], int(match["pid"]))

    @property
    def id(self) -> str:
        return f"run:{'-' if self.run_id is None else self.run_id}@{self.host}:{self.pid}"

    def is_gone(self) -> bool:
        """True when the holder is a process of this machine that no longer exists.

        A process elsewhere, or a pid that is alive (perhaps reused), counts as alive: only the
        lease's expiry can tell then.
        """
        if self.host != this_host() or self.pid == os.getpid():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except OSError:  # exists, but another user's
            return False
        return False


@dataclass(frozen=True)
class LeaseInfo:
    """A competitor's lease as the database has it."""

    competitor: str
    holder: str
    run_id: int | None
    host: str
    pid: int
    acquired_at: datetime
    expires_at: datetime

    def describe(self) -> str:
        """For messages: which run holds it, where, since and until when."""
        run = f"run {self.run_id}" if self.run_id is not None else "a sweep"
        return (
            f"{run} (host {self.host}, pid {self.pid}) since {_clock(self.acquired_at)}, "
            f"lease until {_clock(self.expires_at)}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "competitor": self.competitor,
            "holder": self.holder,
            "run_id": self.run_id,
            "host": self.host,
            "pid": self.pid,
            "acquired_at": self.acquired_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
        }


def _clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def database_now(session: Session) -> datetime:
    """The time leases are measured against: the database server's clock on PostgreSQL."""
    if session.connection().dialect.name == "postgresql":
        moment = session.scalar(select(func.clock_timestamp()))
        assert isinstance(moment, datetime)
        return moment.astimezone(UTC)
    return utcnow()


def _info(row: SweepLease) -> LeaseInfo:
    return LeaseInfo(row.competitor, row.holder, row.run_id, row.host, row.pid, row.acquired_at, row.expires_at)


def lease_of(session: Session, competitor: str) -> LeaseInfo | None:
    row = session.get(SweepLease, competitor, populate_existing=True)
    return _info(row) if row is not None else None


def leases(session: Session) -> list[LeaseInfo]:
    """Every lease row, live or expired, by competitor."""
    return [_info(row) for row in session.scalars(select(SweepLease).order_by(SweepLease.competitor))]


def try_acquire(session: Session, competitor: str, holder: Holder, ttl: timedelta) -> LeaseInfo:
    """Take `competitor`'s lease if it is free, expired, or ours already; returns the lease as it
    then stands (its holder is `holder` when it was taken). One atomic statement decides."""
    now = database_now(session)
    _expire_gone_holders(session, now, competitor)
    # Both dialects' INSERT take the same ON CONFLICT clause.
    insert: Any = postgresql_insert if session.connection().dialect.name == "postgresql" else sqlite_insert
    statement = insert(_LEASES).values(
        competitor=competitor,
        holder=holder.id,
        run_id=holder.run_id,
        host=holder.host,
        pid=holder.pid,
        acquired_at=now,
        renewed_at=now,
        expires_at=now + ttl,
    )
    taken = ("holder", "run_id", "host", "pid", "acquired_at", "renewed_at", "expires_at")
    statement = statement.on_conflict_do_update(
        index_elements=[_LEASES.c.competitor],
        set_={name: statement.excluded[name] for name in taken},
        where=or_(_LEASES.c.expires_at < now, _LEASES.c.holder == holder.id),
    )
    session.execute(statement)
    lease = lease_of(session, competitor)
    assert lease is not None
    return lease


def renew(session: Session, competitor: str, holder: Holder, ttl: timedelta) -> bool:
    """Extend our lease; False when it is no longer ours (it expired and was taken over)."""
    now = database_now(session)
    result = session.execute(
        update(_LEASES)
        .where(_LEASES.c.competitor == competitor, _LEASES.c.holder == holder.id)
        .values(renewed_at=now, expires_at=now + ttl)
    )
    return bool(getattr(result, "rowcount", 0))


def release(session: Session, competitor: str, holder: Holder) -> None:
    """Give our lease back (nothing happens if it is no longer ours)."""
    session.execute(delete(_LEASES).where(_LEASES.c.competitor == competitor, _LEASES.c.holder == holder.id))


def live_run_ids(session: Session, now: datetime) -> set[int]:
    """Runs that hold at least one lease that has not expired."""
    query = select(_LEASES.c.run_id).where(_LEASES.c.expires_at >= now, _LEASES.c.run_id.is_not(None))
    return {int(run_id) for run_id in session.scalars(query)}


def _expire_gone_holders(session: Session, now: datetime, competitor: str | None = None) -> None:
    """End at once the live leases whose holder is a process of this machine that has died."""
    query = select(_LEASES.c.competitor, _LEASES.c.holder).where(
        _LEASES.c.expires_at >= now, _LEASES.c.host == this_host()
    )
    if competitor is not None:
        query = query.where(_LEASES.c.competitor == competitor)
    for name, holder_id in session.execute(query).all():
        holder = Holder.parse(holder_id)
        if holder is not None and holder.is_gone():
            logger.info("lease of %s: its holder %s is gone; the lease is free", name, holder_id)
            session.execute(
                update(_LEASES)
                .where(_LEASES.c.competitor == name, _LEASES.c.holder == holder_id)
                .values(expires_at=now - timedelta(microseconds=1))
            )


class LeaseKeeper:
    """Takes the leases of a sweep's competitors and keeps them while it runs.

    A heartbeat thread renews every lease held each third of `ttl`; a lease found taken over is
    dropped and reported to `on_lost` (the sweep then stops). `release()` gives them all back.
    """

    def __init__(
        self,
        store: Store,
        holder: Holder,
        ttl: timedelta,
        *,
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.holder = holder
        self.ttl = ttl
        self.held: list[str] = []
        self._on_lost = on_lost
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(
        self,
        competitors: Sequence[str],
        *,
        wait: bool = False,
        stop: Any = None,
        on_wait: Callable[[LeaseInfo], None] | None = None,
    ) -> dict[str, LeaseInfo]:
        """Take what is free; returns the competitors held by someone else, with their lease.

        `wait=True` keeps trying until every lease is ours (or `stop` is set), heartbeating the
        ones already taken meanwhile; `on_wait` hears of each lease waited for, once.
        """
        others: dict[str, LeaseInfo] = {}
        pending = list(competitors)
        told: set[str] = set()
        while True:
            for name in list(pending):
                with self.store.session() as session:
                    lease = try_acquire(session, name, self.holder, self.ttl)
                if lease.holder == self.holder.id:
                    with self._lock:
                        self.held.append(name)
                    pending.remove(name)
                    others.pop(name, None)
                    logger.debug("lease of %s taken by %s", name, self.holder.id)
                else:
                    others[name] = lease
                    if on_wait is not None and wait and name not in told:
                        on_wait(lease)
                        told.add(name)
            if self.held:
                self._start_heartbeat()
            if not pending or not wait or (stop is not None and stop.is_set()):
                return others
            # Poll at the heartbeat's pace: a released lease is noticed within a third of the ttl.
            self._stopped.wait(self._interval)

    @property
    def _interval(self) -> float:
        return max(self.ttl.total_seconds() / 3, 0.05)

    def _start_heartbeat(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._heartbeat, name="lease-heartbeat", daemon=True)
            self._thread.start()

    def _heartbeat(self) -> None:
        while not self._stopped.wait(self._interval):
            with self._lock:
                names = list(self.held)
            for name in names:
                try:
                    with self.store.session() as session:
                        kept = renew(session, name, self.holder, self.ttl)
                except SQLAlchemyError as exc:
                    # An outage: the sweep cannot write either. Renewing goes on; a lease that is
                    # still ours when the database is back was never lost.
                    logger.warning("lease of %s: cannot renew (%s)", name, str(exc).splitlines()[0][:200])
                    continue
                if not kept:
                    logger.error(
                        "lease of %s lost: it expired and another sweep took it over; stopping this sweep",
                        name,
                        extra={"competitor": name, "holder": self.holder.id},
                    )
                    with self._lock:
                        if name in self.held:
                            self.held.remove(name)
                    if self._on_lost is not None:
                        self._on_lost(name)

    def release(self) -> None:
        """Stop the heartbeat and give back every lease still held."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._lock:
            names, self.held = list(self.held), []
        for name in names:
            try:
                with self.store.session() as session:
                    release(session, name, self.holder)
            except SQLAlchemyError as exc:
                logger.warning(
                    "lease of %s: cannot release it (%s); it expires by itself within %s",
                    name,
                    str(exc).splitlines()[0][:200],
                    self.ttl,
                )

    def __enter__(self) -> LeaseKeeper:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()
