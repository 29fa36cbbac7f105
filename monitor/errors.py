"""The one exception tree of pricemon.

    PricemonError                 anything a user can cause; the CLI prints `pricemon: error: <message>`
    ├── ConfigError               the config file or environment (file, key path, what was expected)
    ├── ImportDataError           a CSV import; carries every bad row as `FILE:LINE: field: problem`
    ├── DatabaseError             the database cannot be reached, or its schema is not pricemon's
    │   └── DatabaseUnavailableError  down, restarting or locked: waiting may help (the daemon retries)
    ├── NotFoundError             a SKU, competitor, suggestion ... that does not exist
    ├── ExtractionError           a page yielded no trustworthy price (`pricemon extract`)
    ├── FetchError                a page could not be fetched
    └── PluginError               a strategy plugin failed to load or misbehaved

Lower-level errors are translated at the boundary with `raise X(...) from exc`; a traceback that
reaches the user is a bug.
"""

from __future__ import annotations


class PricemonError(Exception):
    """Base class for errors a user can cause; the message names what and where."""

    exit_code = 1


class ConfigError(PricemonError):
    """The configuration is invalid."""


class ImportDataError(PricemonError):
    """A CSV import was rejected; nothing was written."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        shown = "\n  ".join(problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{path}: {len(problems)} bad row(s), nothing imported:\n  {shown}{more}")


class DatabaseError(PricemonError):
    """The database is unreachable or not in the expected state."""


class DatabaseUnavailableError(DatabaseError):
    """The database is unavailable for now (down, restarting, locked); retrying may succeed."""


class NotFoundError(PricemonError):
    """A named object does not exist."""


class ExtractionError(PricemonError):
    """No trustworthy price could be extracted from a page."""

    exit_code = 3


class FetchError(PricemonError):
    """A page could not be fetched."""


class PluginError(PricemonError):
    """A strategy plugin failed to load, clashed with another, or misbehaved."""
