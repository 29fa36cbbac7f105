"""`pricemon config check` beyond what loading the settings validates: everything that can be
checked without running anything (strategy names and options per assignment, secrets'
environment variables, the feed's CSV path, names that refer to competitors), each problem named
by its key path.

Errors are what would make a command fail; warnings are what would make something not work as
the user probably expects (an unset secret variable, options no strategy uses).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.errors import PricemonError
from monitor.pricing.engine import effective_assignment
from monitor.pricing.loader import StrategyManager
from monitor.settings import Assignment, Settings, secret_env_vars


@dataclass
class ConfigReport:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_config(settings: Settings, environ: Mapping[str, str] | None = None) -> ConfigReport:
    """Every problem of `settings` that shows without running anything, by key path."""
    env = os.environ if environ is None else environ
    report = ConfigReport()
    _check_strategies(settings, report)
    for key, name in secret_env_vars(settings):
        if not env.get(name):
            report.warnings.append(f"{key}: environment variable {name} is not set")
    _check_feed_path(settings, report)
    _check_competitor_names(settings, report)
    where = settings.source or "<config>"
    report.errors = [f"{where}: {e}" for e in report.errors]
    report.warnings = [f"{where}: {w}" for w in report.warnings]
    return report


def _assignments(settings: Settings) -> Iterator[tuple[str, Assignment, Assignment]]:
    """(key path, the assignment as written, the assignment in effect) for each one configured."""
    pricing = settings.pricing
    yield "pricing.default", pricing.default, pricing.default
    for tag, written in pricing.tags.items():
        yield f"pricing.tags.{tag}", written, effective_assignment(pricing, "\0", [tag])[1]
    for sku, written in pricing.skus.items():
        yield f"pricing.skus.{sku}", written, effective_assignment(pricing, sku, [])[1]


def _check_strategies(settings: Settings, report: ConfigReport) -> None:
    try:
        manager = StrategyManager(settings.strategies_dir)
    except PricemonError as exc:
        report.errors.append(f"strategies_dir: {exc}")
        return
    for path, error in manager.broken_files.items():
        report.errors.append(f"strategies_dir: plugin file {path} failed to import: {error}")
    for key, written, effective in _assignments(settings):
        is_default = key == "pricing.default"
        if is_default or "strategies" in written.model_fields_set:
            for index, name in enumerate(written.strategies):
                problem = _strategy_problem(manager, name)
                if problem:
                    report.errors.append(f"{key}.strategies[{index}]: {problem}")
        if not (is_default or "options" in written.model_fields_set):
            continue
        for name, given in written.options.items():
            where = f"{key}.options.{name}"
            if name not in manager.sources:
                report.errors.append(f"{where}: {_strategy_problem(manager, name)}")
                continue
            if name not in effective.strategies:
                chain = ", ".join(effective.strategies)
                report.warnings.append(
                    f"{where}: strategy {name!r} is not in this assignment's chain ({chain}):"
                    " its options have no effect"
                )
            _check_options(manager, name, given, where, report)


def _strategy_problem(manager: StrategyManager, name: str) -> str | None:
    if name not in manager.sources:
        known = ", ".join(manager.names()) or "none"
        return f"unknown strategy {name!r} (known: {known})"
    source = manager.load(name)
    if source.error:
        return f"strategy {name!r} {source.error}"
    return None


def _check_options(manager: StrategyManager, name: str, given: Any, where: str, report: ConfigReport) -> None:
    source = manager.load(name)
    if source.strategy is None:
        return  # its import failure is reported where the chain names it
    if not isinstance(given, Mapping):
        report.errors.append(f"{where}: expected a table of options, got {given!r}")
        return
    declared = source.strategy.options
    for key, value in given.items():
        option = declared.get(key)
        if option is None:
            known = ", ".join(sorted(declared)) or "none"
            report.errors.append(f"{where}.{key}: strategy {name!r} has no option {key!r} (options: {known})")
            continue
        try:
            option.convert(value)
        except ValueError as exc:
            report.errors.append(f"{where}.{key}: {exc} ({option.type.__name__} option of {name!r})")


def _check_feed_path(settings: Settings, report: ConfigReport) -> None:
    path = settings.feed.csv_path
    if path is None:
        return
    problem = csv_path_problem(Path(path))
    if problem:
        report.errors.append(f"feed.csv_path: {problem}")


def csv_path_problem(path: Path) -> str | None:
    """Why a file could not be written at `path`, or None."""
    if path.is_dir():
        return f"{path} is a folder, expected a file name"
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        return f"folder {folder} does not exist (pricemon does not create it)"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"folder {folder} is not writable"
    if path.exists() and not os.access(path, os.W_OK):
        return f"{path} is not writable"
    return None


def _check_competitor_names(settings: Settings, report: ConfigReport) -> None:
    configured = {c.name for c in settings.competitors}
    known = ", ".join(sorted(configured)) or "none configured"
    for key, written, _effective in _assignments(settings):
        for list_key in ("include", "exclude"):
            for index, name in enumerate(getattr(written, list_key)):
                if name not in configured:
                    report.warnings.append(f"{key}.{list_key}[{index}]: unknown competitor {name!r} (known: {known})")
    for number, rule in enumerate(settings.alerts):
        for index, name in enumerate(rule.competitors):
            if name not in configured:
                report.warnings.append(
                    f"alerts[{number}].competitors[{index}]: unknown competitor {name!r} (known: {known})"
                    f" (rule {rule.name!r})"
                )


__all__ = ["ConfigReport", "check_config", "csv_path_problem"]
