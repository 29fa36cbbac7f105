"""Finding strategy plugins: entry points of the `pricemon.strategies` group, and `*.py` files in a folder.

Both sources go through one `StrategyManager`, so a name defined twice is an error that names both
sources, never a silent override. Entry points are imported lazily, on first use of their name;
an import failure is remembered and reported for each product that needs the strategy.
"""

from __future__ import annotations

import importlib.util
import inspect
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, cast

from monitor.errors import ConfigError, PluginError
from monitor.pricing import ENTRY_POINT_GROUP, Option, Strategy

logger = logging.getLogger(__name__)


@dataclass
class StrategySource:
    """Where a strategy comes from, and the loaded strategy (or why it could not be loaded)."""

    name: str
    source: str  # "pricemon 0.1.0 (strategies.undercut:Undercut)" or a file path
    entry_point: EntryPoint | None = None
    strategy: Strategy | None = None
    error: str | None = None
    loaded: bool = field(default=False, repr=False)


def _is_strategy(obj: Any) -> bool:
    return (
        isinstance(getattr(obj, "name", None), str)
        and callable(getattr(obj, "suggest", None))
        and isinstance(getattr(obj, "options", None), Mapping)
    )


def _instantiate(obj: Any, where: str) -> Strategy:
    """A class becomes its instance; an object is used as it is."""
    strategy: Any = obj() if inspect.isclass(obj) else obj
    if not _is_strategy(strategy):
        raise PluginError(f"{where}: not a strategy (needs `name`, `options` and `suggest(context, options)`)")
    for key, option in strategy.options.items():
        if not isinstance(option, Option):
            raise PluginError(f"{where}: option {key!r} must be a monitor.pricing.Option")
    return cast(Strategy, strategy)


class StrategyManager:
    """All strategies pricemon can use, by name."""

    def __init__(self, strategies_dir: Path | str | None = None, *, group: str = ENTRY_POINT_GROUP) -> None:
        self.sources: dict[str, StrategySource] = {}
        # Kept so that a strategy worker process can build the same manager (monitor.pricing.isolation).
        self.strategies_dir = Path(strategies_dir) if strategies_dir is not None else None
        self.group = group
        # Plugin files that failed to import: we do not know which names they would have defined.
        self.broken_files: dict[str, str] = {}
        for ep in entry_points(group=group):
            dist = ep.dist
            label = f"{dist.name} {dist.version}" if dist is not None else "(unknown package)"
            self._add(StrategySource(ep.name, f"{label} ({ep.value})", entry_point=ep))
        if strategies_dir is not None:
            self._load_folder(Path(strategies_dir))

    def _add(self, source: StrategySource) -> None:
        existing = self.sources.get(source.name)
        if existing is not None:
            raise PluginError(
                f"strategy name {source.name!r} is defined twice: by {existing.source} and by {source.source}"
            )
        self.sources[source.name] = source

    def _load_folder(self, folder: Path) -> None:
        if not folder.is_dir():
            raise ConfigError(f"strategies_dir {folder}: not a folder")
        for path in sorted(folder.glob("*.py")):
            if path.name.startswith("_"):
                continue
            try:
                module = self._import_file(path)
            except Exception as exc:  # a broken plugin file must not stop the others
                message = f"{type(exc).__name__}: {exc}"
                logger.warning("strategy plugin %s failed to import: %s", path, message)
                self.broken_files[str(path)] = message
                continue
            for _attr, obj in vars(module).items():
                # Only what the file itself defines: imported names (e.g. a built-in class) are not new strategies.
                if getattr(obj, "__module__", None) != module.__name__ or not _is_strategy(obj):
                    continue
                try:
                    strategy = _instantiate(obj, str(path))
                except PluginError as exc:
                    self.broken_files[str(path)] = str(exc)
                    continue
                except Exception as exc:
                    self.broken_files[str(path)] = f"{type(exc).__name__}: {exc}"
                    continue
                self._add(StrategySource(strategy.name, str(path), strategy=strategy, loaded=True))

    @staticmethod
    def _import_file(path: Path) -> ModuleType:
        module_name = f"pricemon_plugin_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        return module

    def names(self) -> list[str]:
        return sorted(self.sources)

    def load(self, name: str) -> StrategySource:
        """The strategy called `name`, imported now if it is an entry point not yet used.

        Raises ConfigError for a name nobody defines; a plugin that fails to import comes back
        with `error` set (the caller reports it per product).
        """
        source = self.sources.get(name)
        if source is None:
            broken = "; ".join(f"plugin file {p} failed to import ({e})" for p, e in self.broken_files.items())
            if broken:
                # It may live in the file that failed: report it per product instead of stopping the run.
                return StrategySource(name, "(unavailable)", error=f"is unavailable: {broken}", loaded=True)
            known = ", ".join(self.names()) or "none"
            raise ConfigError(f"unknown strategy {name!r} (known: {known})")
        if not source.loaded:
            source.loaded = True
            assert source.entry_point is not None
            try:
                source.strategy = _instantiate(source.entry_point.load(), source.source)
            except Exception as exc:  # any failure in third-party import code is the plugin's
                source.error = f"failed to import from {source.source}: {type(exc).__name__}: {exc}"
                logger.warning("strategy %s %s", name, source.error)
        return source

    def resolve_options(self, name: str, given: Mapping[str, Any], where: str) -> dict[str, Any]:
        """The options of strategy `name`: defaults overlaid with `given`, each converted and checked."""
        source = self.load(name)
        if source.strategy is None:
            return dict(given)
        declared = source.strategy.options
        unknown = sorted(set(given) - set(declared))
        if unknown:
            known = ", ".join(sorted(declared)) or "none"
            raise ConfigError(f"{where}: strategy {name!r} has no option {unknown[0]!r} (options: {known})")
        resolved: dict[str, Any] = {}
        for key, option in declared.items():
            if key not in given:
                resolved[key] = option.default
                continue
            try:
                resolved[key] = option.convert(given[key])
            except ValueError as exc:
                raise ConfigError(f"{where}: option {name}.{key}: {exc}") from None
        return resolved


def describe_strategies(manager: StrategyManager) -> list[dict[str, Any]]:
    """Every strategy with its description, options and source (for `pricemon strategies list`)."""
    rows: list[dict[str, Any]] = []
    for name in manager.names():
        source = manager.load(name)
        strategy = source.strategy
        rows.append(
            {
                "name": name,
                "description": getattr(strategy, "description", "") if strategy else "",
                "options": {
                    key: {
                        "type": option.type.__name__,
                        "default": str(option.default),
                        "description": option.description,
                        **({"choices": list(option.choices)} if option.choices else {}),
                    }
                    for key, option in (strategy.options.items() if strategy else ())
                },
                "source": source.source,
                "error": source.error,
            }
        )
    for path, error in manager.broken_files.items():
        rows.append({"name": None, "description": "", "options": {}, "source": path, "error": error})
    return rows
