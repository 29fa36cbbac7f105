"""docker-compose.yml and .ci/run stay in step with the CLI and the README."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from monitor.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def _pricemon_commands() -> list[list[str]]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    commands = []
    for service in compose["services"].values():
        command = service.get("command")
        if command:
            commands.append(command)
        test = (service.get("healthcheck") or {}).get("test")
        if test and test[0] == "CMD" and test[1] == "pricemon":
            commands.append(test[1:])
    return commands


def test_compose_parses_and_has_its_services() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert set(compose["services"]) == {"postgres", "rabbitmq", "migrate", "pricemon", "worker"}
    # The worker service scales: no fixed container name or published port may pin it to one.
    worker = compose["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert compose["services"]["pricemon"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("command", _pricemon_commands(), ids=lambda c: " ".join(c))
def test_every_compose_command_exists_in_the_cli(command: list[str]) -> None:
    assert command[0] == "pricemon"
    args = command[1:]
    # Walk the command path; every option given must exist on the command it is given to.
    group = cli
    ctx = cli.make_context("pricemon", [], resilient_parsing=True)
    words = [a for a in args if not a.startswith("-")]
    for word in words:
        sub = group.get_command(ctx, word) if hasattr(group, "get_command") else None
        if sub is None:
            break
        group = sub
    assert group is not cli, f"{' '.join(command)}: no such pricemon command"
    options = {opt for param in group.params for opt in getattr(param, "opts", [])}
    for arg in args:
        if arg.startswith("-"):
            assert arg in options, f"{' '.join(command)}: {arg} is not an option of `pricemon {group.name}`"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_command = ci.strip().splitlines()[-1]
    assert test_command in readme, f"README must show the test command CI runs: {test_command}"
