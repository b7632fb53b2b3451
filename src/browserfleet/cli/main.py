"""Entry point: parse the command line, build Settings, dispatch to a subcommand."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from browserfleet.cli import admin, cluster, doctor, leftovers, serve
from browserfleet.errors import DomainError
from browserfleet.settings import Isolation, Settings


def _settings_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, help="data directory (database, session files)")
    parser.add_argument("--database-url", help="SQLAlchemy URL; default SQLite in the data dir")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="browserfleet", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p_serve = commands.add_parser("serve", help="run the API, CDP gateway and health endpoints")
    _settings_args(p_serve)
    p_serve.add_argument("--host")
    p_serve.add_argument("--port", type=int)
    p_serve.add_argument("--public-url", help="base of the URLs handed to clients")
    p_serve.add_argument(
        "--cdp-host-template",
        help="publish each session's CDP endpoint on a host of its own, e.g. "
        "'{token}.cdp.example.com' (wildcard DNS and certificate); "
        "default: {public-url}/cdp/{token}",
    )
    p_serve.add_argument(
        "--isolation",
        choices=[i.value for i in Isolation],
        help="sandbox (default): every browser in its own OS sandbox; none: no sandbox, for "
        "development on a machine without namespaces",
    )
    p_serve.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="run the browsers on the slotted nodes of the Ray cluster whose head is at "
        "ADDRESS (host:port); needs PostgreSQL (docs/cluster.md)",
    )
    p_serve.set_defaults(run=serve.run)

    p_migrate = commands.add_parser("migrate", help="create or upgrade the database schema")
    _settings_args(p_migrate)
    p_migrate.set_defaults(run=admin.migrate)

    p_doctor = commands.add_parser(
        "doctor", help="check Chromium, ffmpeg, database, data dir, port and capacity"
    )
    _settings_args(p_doctor)
    p_doctor.add_argument("--host")
    p_doctor.add_argument("--port", type=int)
    p_doctor.add_argument("--isolation", choices=[i.value for i in Isolation])
    p_doctor.set_defaults(run=doctor.run)

    p_leftovers = commands.add_parser(
        "leftovers", help="what dead servers left of their browser sandboxes on this host"
    )
    _settings_args(p_leftovers)
    leftovers.add_arguments(p_leftovers)
    p_leftovers.set_defaults(run=leftovers.run)

    cluster.add_commands(
        commands.add_parser("cluster", help="Ray nodes that run browsers on several machines"),
        _settings_args,
    )
    admin.add_key_commands(commands.add_parser("keys", help="API keys"), _settings_args)
    admin.add_project_commands(commands.add_parser("projects", help="projects"), _settings_args)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("data_dir", "database_url", "host", "port", "public_url", "cdp_host_template"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    if getattr(args, "isolation", None) is not None:
        overrides["sandbox"] = {"isolation": args.isolation}
    if getattr(args, "cluster", None) is not None:
        overrides["cluster"] = {"address": args.cluster}
    return Settings(**overrides)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
        code: int = args.run(settings, args)
    except DomainError as error:
        sys.stderr.write(f"error: {type(error).__name__}: {error}\n")
        return 1
    except ValueError as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
