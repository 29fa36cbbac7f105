"""What every `pricemon` command shares: the root group, its options, the `App` it passes down,
and the output helpers.

Every command that shows data takes `--json` and then prints JSON only. Mistakes a user can
make end as `pricemon: error: <what> (<where>)` and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from monitor.errors import PricemonError
from monitor.settings import Settings, load_settings
from monitor.store.database import Store, open_store

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

stdout = Console(highlight=False, soft_wrap=True)


@dataclass
class App:
    """What every command shares: the options given to `pricemon` itself, and lazily opened
    settings and store (so `--help` works without a config or a database)."""

    config_path: str | None
    database_url: str | None
    strategies_dir: str | None
    _settings: Settings | None = None
    _store: Store | None = None
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(
                self.config_path, database_url=self.database_url, strategies_dir=self.strategies_dir
            )
        return self._settings

    def store(self, *, migrate: bool | None = None) -> Store:
        if self._store is None:
            self._store = open_store(self.settings.database_url, migrate=migrate)
            self.cleanups.append(self._store.dispose)
        return self._store


pass_app = click.make_pass_decorator(App)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON only.")(func)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def print_table(title: str | None, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
    table = Table(title=title, show_lines=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        # Scraped values go in as plain text: rich markup in them must not be interpreted.
        table.add_row(*("" if v is None else str(v) for v in row))
    stdout.print(table, markup=False)


def configure_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        from monitor.logs import JsonFormatter

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    from monitor.redact import install_log_filter

    install_log_filter(handler)  # the safety net: no secret reaches a log line, whoever logs it
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "config_path",
    envvar="PRICEMON_CONFIG",
    type=click.Path(dir_okay=False),
    help="Config file (TOML). Env: PRICEMON_CONFIG. Without one, pricemon uses ./pricemon.db and no competitors.",
)
@click.option(
    "--database-url",
    envvar="PRICEMON_DATABASE_URL",
    help="SQLAlchemy database URL; overrides the config. Env: PRICEMON_DATABASE_URL.",
)
@click.option(
    "--strategies-dir",
    type=click.Path(file_okay=False),
    help="Folder of strategy plugin files (*.py); overrides `strategies_dir` in the config.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="warning",
    show_default=True,
    help="Logging detail on stderr.",
)
@click.version_option(package_name="pricemon", prog_name="pricemon")
@click.pass_context
def cli(
    ctx: click.Context, config_path: str | None, database_url: str | None, strategies_dir: str | None, log_level: str
) -> None:
    """pricemon: watch competitors' prices, keep their history, suggest and apply our prices.

    \b
    Typical use:
      pricemon demo                                 see everything work on a bundled demo
      pricemon --config pricemon.toml import products products.csv
      pricemon --config pricemon.toml import listings listings.csv
      pricemon --config pricemon.toml run           the scheduler daemon
      pricemon --config pricemon.toml report --out report.html
    """
    configure_logging(log_level)
    app = App(config_path=config_path, database_url=database_url, strategies_dir=strategies_dir)
    ctx.obj = app
    ctx.call_on_close(lambda: [cleanup() for cleanup in reversed(app.cleanups)])


def stock_text(value: bool | None) -> str:
    return "?" if value is None else ("yes" if value else "no")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `pricemon` console script."""
    try:
        code = cli.main(args=argv, prog_name="pricemon", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("pricemon: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        from monitor.redact import redact_text

        click.echo(f"pricemon: error: {redact_text(exc.format_message())}", err=True)
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            click.echo(f"Try '{exc.ctx.command_path} --help'.", err=True)
        sys.exit(exc.exit_code)
    except PricemonError as exc:
        from monitor.redact import redact_text

        click.echo(f"pricemon: error: {redact_text(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    if isinstance(code, int) and code:
        sys.exit(code)
