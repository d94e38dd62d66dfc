"""docs/deploy stays true to the code: every command its files and its README run is a real
``qtraq-live`` command with real flags, every QTRAQ_* variable they set is a setting the code
reads, and compose.yaml, the Caddyfile and the systemd units agree with each other. Docker
cannot run here, so this is what keeps those files honest."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from qtraq_live.cli import build_parser
from qtraq_live.config import SETTINGS

DEPLOY = Path(__file__).resolve().parent.parent / "docs" / "deploy"
KNOWN_ENV = {s.env for s in SETTINGS if s.env} | {"QTRAQ_CONFIG"}  # QTRAQ_CONFIG names the file itself
SERVICES = {"valkey", "primary", "hub1", "hub2", "worker1", "worker2", "proxy"}
ROLES = {"primary": "all", "hub1": "hub", "hub2": "hub"}
SHELL_STOP = {"|", "||", "&&", ";", "<", ">", ">>", "\\"}


def parse_cli(argv: list[str]) -> Any:
    """``qtraq-live ARGV`` as our argparse reads it; a failure names the command."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"not a valid qtraq-live command: {shlex.join(argv)}")


def qtraq_env_names(text: str) -> set[str]:
    return set(re.findall(r"\b(QTRAQ_[A-Z0-9_]+)\s*[:=]", text))


# -- compose.yaml ------------------------------------------------------------------------------

def test_compose_commands_and_variables_are_real() -> None:
    """Works without PyYAML: compose.yaml writes each command as a one-line JSON list."""
    text = (DEPLOY / "compose.yaml").read_text()
    commands = [json.loads(c) for c in re.findall(r"^\s+command: (\[.*\])\s*$", text, re.M)]
    ours = [c for c in commands if c[0] == "qtraq-live"]
    assert len(ours) == 5  # primary, two hubs, two workers
    for argv in ours:
        parse_cli(argv[1:])
    assert qtraq_env_names(text) and qtraq_env_names(text) <= KNOWN_ENV


def test_compose_services_fit_together() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML reads the structure; the check above needs none")
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services: dict[str, Any] = compose["services"]
    assert set(services) == SERVICES
    proxy_ip = services["proxy"]["networks"]["backend"]["ipv4_address"]
    for name, service in services.items():
        if not service.get("command", [""])[0] == "qtraq-live":
            continue
        args = parse_cli(service["command"][1:])
        assert (args.command, getattr(args, "role", None)) == (("serve", ROLES[name]) if name in ROLES
                                                               else ("worker", None)), name
        env = service["environment"]
        assert set(env) <= KNOWN_ENV, name
        assert "@valkey:6379/" in env["QTRAQ_REDIS_URL"] and env["QTRAQ_ENV"] == "production", name
        assert env["QTRAQ_TRUSTED_PROXIES"] == proxy_ip, name
        if name in ROLES:
            assert args.port == 8000 and args.host == "0.0.0.0" and "healthcheck" in service, name
    volumes = {name: service.get("volumes", []) for name, service in services.items()}
    assert volumes["primary"] == ["primary-data:/data"]  # the SQLite record outlives the container
    assert not volumes["hub1"] and not volumes["hub2"]  # hubs start empty, every time
    caddyfile = next(v.split(":")[0] for v in volumes["proxy"] if v.endswith(":/etc/caddy/Caddyfile:ro"))
    assert (DEPLOY / caddyfile).is_file()
    upstreams = set(re.findall(r"\b([a-z][a-z0-9]*):8000\b", (DEPLOY / caddyfile).read_text()))
    assert upstreams == {"primary", "hub1", "hub2"}


def test_dockerfile_default_command_is_real() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    (cmd,) = re.findall(r"^CMD (\[.*\])$", text, re.M)
    argv = json.loads(cmd)
    assert argv[0] == "qtraq-live"
    parse_cli(argv[1:])
    assert qtraq_env_names(text) <= KNOWN_ENV


# -- systemd -----------------------------------------------------------------------------------

UNITS = sorted((DEPLOY / "systemd").glob("*.service"))


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_unit_runs_a_real_command(unit: Path) -> None:
    text = unit.read_text().replace("%i", "8001")
    (exec_start,) = re.findall(r"^ExecStart=(.*)$", text, re.M)
    argv = shlex.split(exec_start)
    assert Path(argv[0]).name == "qtraq-live"
    args = parse_cli(argv[1:])
    env = dict(re.findall(r"^Environment=(QTRAQ_[A-Z_]+)=(.*)$", text, re.M))
    assert set(env) <= KNOWN_ENV and "QTRAQ_DATA_DIR" in env  # each process its own data dir
    assert "EnvironmentFile=/etc/qtraq-live/qtraq-live.env" in text
    if args.command == "serve":
        assert args.role == ("hub" if "hub@" in unit.name else "all")


def test_nginx_upstreams_are_the_units_ports() -> None:
    """nginx-hubs.conf sends to the primary's port and the hub instances the README enables."""
    text = (DEPLOY / "nginx-hubs.conf").read_text()
    upstreams = dict(re.findall(r"upstream (\w+) \{(.*?)\}", text, re.S))
    ports = {name: re.findall(r"server 127\.0\.0\.1:(\d+)", body) for name, body in upstreams.items()}
    primary_unit = (DEPLOY / "systemd" / "qtraq-live.service").read_text()
    assert ports["qtraq_primary"] == re.findall(r"--port (\d+)", primary_unit)
    readme = (DEPLOY / "README.md").read_text()
    assert tuple(ports["qtraq_hubs"]) == re.findall(r"qtraq-live-hub@(\d+) qtraq-live-hub@(\d+)", readme)[0]
    assert "least_conn;" in upstreams["qtraq_hubs"]


def test_units_cover_primary_hub_and_worker() -> None:
    assert [u.name for u in UNITS] == ["qtraq-live-hub@.service", "qtraq-live-worker@.service",
                                       "qtraq-live.service"]


def test_environment_file_example_holds_placeholders_only() -> None:
    text = (DEPLOY / "systemd" / "qtraq-live.env.example").read_text()
    names = qtraq_env_names(text)
    assert names <= KNOWN_ENV and "QTRAQ_DATA_DIR" not in names
    values = dict(re.findall(r"^(QTRAQ_[A-Z_]+)=(.*)$", text, re.M))
    assert values["QTRAQ_SECRET_KEY"] == "CHANGE_ME" and ":CHANGE_ME@" in values["QTRAQ_REDIS_URL"]


def test_compose_env_example_holds_placeholders_only() -> None:
    values = dict(re.findall(r"^([A-Z_]+)=(.*)$", (DEPLOY / "env.example").read_text(), re.M))
    compose = (DEPLOY / "compose.yaml").read_text()
    required = set(re.findall(r"\$\{([A-Z_]+):\?", compose))
    assert required <= set(values)  # every variable compose insists on is in the example
    assert all(values[k] == "CHANGE_ME" for k in ("VALKEY_PASSWORD", "QTRAQ_SECRET_KEY"))


# -- the operator's guide ----------------------------------------------------------------------

def readme_commands() -> list[list[str]]:
    """Every ``qtraq-live …`` (or ``qtraq …``, the guide's systemd-run helper) run in a shell
    block of the README, up to a pipe or redirect."""
    text = (DEPLOY / "README.md").read_text()
    out = []
    for block in re.findall(r"```(?:sh|console|bash)\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True) if "qtraq" in line else []
            if words[:1] == ["sudo"]:
                words = words[1:]
            if words[:1] in (["systemctl"], ["journalctl"]):  # qtraq-live there is a unit name
                continue
            starts = [i for i, w in enumerate(words) if w in ("qtraq-live", "qtraq") or w.endswith("/bin/qtraq-live")]
            rest = words[starts[0] + 1:] if starts else []
            cut = next((i for i, w in enumerate(rest) if w in SHELL_STOP), len(rest))
            if rest[:cut] and rest[:cut] != ["$@"]:  # not the helper's own definition
                out.append(rest[:cut])
    return out


def test_readme_commands_are_real() -> None:
    commands = readme_commands()
    assert len(commands) >= 5
    for argv in commands:
        parse_cli(argv)
    assert qtraq_env_names((DEPLOY / "README.md").read_text()) <= KNOWN_ENV
