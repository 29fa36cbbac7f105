"""The `pricemon` command, one module per command group.

`base` holds the root group and what every command shares; importing the group modules
registers their commands on it.
"""

from monitor.cli import catalog, daemon, demand, pricing, report, scraping  # noqa: F401  (registers the commands)
from monitor.cli.base import App, cli, main

__all__ = ["App", "cli", "main"]
