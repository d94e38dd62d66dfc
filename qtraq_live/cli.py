"""The ``qtraq-live`` console script: one explicit table of commands.

Each :class:`Command` names its words (``"user add"``), help, an ``arguments(parser)`` function
and ``run(args, settings) -> exit status``. An area adds its command with one line in
:data:`COMMANDS`. Commands that need Redis while the server is stopped use :func:`run_offline`,
which starts the embedded Redis for the command's duration when nothing answers on its socket.

Exit status: 0 done, 1 failed, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from . import __version__
from .abdm import commands as abdm_cli
from .accounts import commands as accounts_cli
from .config import PROCESS_MODES, Settings, load_settings
from .errors import ConfigError, Invalid, QtraqError, Unavailable
from .record import access, breach_report
from .record.access import ROLES
from .runtime import logs, server
from .runtime.duties import Context
from .runtime.offline import run_offline
from .web import staff_access

T = TypeVar("T")


# -- serve, worker, demo, rebuild -------------------------------------------------------------

def serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", help="address to listen on (default: server.host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: server.port, 8000; 0 picks a free one)")
    p.add_argument("--workers", type=int, help="HTTP/WebSocket processes (default: server.workers, 1)")
    p.add_argument("--role", choices=PROCESS_MODES, default="all",
                   help="all: the primary (default); hub: sockets and reads only, needs QTRAQ_REDIS_URL")


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    return server.serve(settings, mode=args.role, host=args.host, port=args.port, workers=args.workers)


def worker_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--burst", action="store_true", help="exit once the queues are empty")


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from .workers.worker import run_worker  # imports RQ only in worker processes

    run_worker(settings, burst=args.burst)  # returns whether it did any work: not a failure
    return 0


def cmd_duties(args: argparse.Namespace, settings: Settings) -> int:
    from .runtime.duties import NICENESS, run_duties

    os.nice(NICENESS)
    asyncio.run(run_duties(settings))
    return 0


def demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", help="address to listen on (default: server.host, 127.0.0.1; 0.0.0.0 lets phones "
                                  "on the same network open the pages, and the QR poster links to this machine)")
    p.add_argument("--port", type=int, help="port (default: server.port, 8000; 0 picks a free one)")
    p.add_argument("--simulate", action="store_true",
                   help="keep issuing tickets and calling them so the screens move")


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from .runtime import demo

    return demo.run(settings, host=args.host, port=args.port, simulate=args.simulate)


def cmd_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    if (pid := server.running_pid(settings)) is not None:
        raise Unavailable(f"stop the server first (pid {pid} serves {settings.data_dir})")
    from .record.rebuild import rebuild

    async def action(ctx: Context) -> None:
        await rebuild(ctx.store, ctx.redis)

    run_offline(settings, action)
    print("live state rebuilt from the SQLite record")
    return 0


# -- access: users, API tokens, display keys --------------------------------------------------
# Each of these runs one call on the record and Redis (the server may be stopped: run_offline)
# and prints one line about it: :func:`offline_command` writes that once.

def offline_command(action: Callable[[argparse.Namespace, Context], Awaitable[T]],
                    say: Callable[[argparse.Namespace, T], str]) -> Callable[[argparse.Namespace, Settings], int]:
    """A command's ``run``: ``await action(args, ctx)`` offline, then print ``say(args, result)``."""
    def run(args: argparse.Namespace, settings: Settings) -> int:
        result = run_offline(settings, lambda ctx: action(args, ctx))
        print(say(args, result))
        return 0

    return run


def username_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("username")


def role_arguments(p: argparse.ArgumentParser) -> None:
    """``USERNAME --role R [--queue Q ...]``."""
    username_argument(p)
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--queue", action="append", default=[], metavar="Q",
                   help="a queue this doctor acts on (repeat for several)")


def password_stdin_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")


def password_arguments(p: argparse.ArgumentParser) -> None:
    """``USERNAME [--password-stdin]``."""
    username_argument(p)
    password_stdin_argument(p)


def user_add_arguments(p: argparse.ArgumentParser) -> None:
    """``USERNAME --role R [--queue Q ...] [--password-stdin]``."""
    role_arguments(p)
    password_stdin_argument(p)


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise Invalid("password", "the two entries differ")
    else:
        raise Invalid("password", "no terminal to prompt on; pipe it with --password-stdin")
    if not password:
        raise Invalid("password", "must not be empty")
    return password


def cmd_user_add(args: argparse.Namespace, settings: Settings) -> int:
    if args.queue and args.role != "doctor":
        raise Invalid("queue", "only a doctor is bound to queues")
    password = read_password(args.password_stdin)
    return offline_command(
        lambda a, ctx: access.create_user(ctx.store, ctx.redis, a.username, password, a.role, tuple(a.queue)),
        lambda a, user_id: f"created {a.role} user {a.username} (id {user_id})")(args, settings)


def token_create_arguments(p: argparse.ArgumentParser) -> None:
    username_argument(p)
    p.add_argument("--scope", choices=("press",), default="",
                   help="limit the token: press = call the next patient only (a desk button)")
    p.add_argument("--expires-days", type=int, metavar="N", help="the token stops working after N days")


def cmd_token_create(args: argparse.Namespace, settings: Settings) -> int:
    if args.expires_days is not None and args.expires_days < 1:
        raise Invalid("--expires-days", "must be at least 1")
    expires_at = int(time.time()) + args.expires_days * 86_400 if args.expires_days else None
    return offline_command(
        lambda a, ctx: access.create_api_token(ctx.store, ctx.redis, a.username, a.scope, expires_at),
        lambda a, token: f"API token for {a.username} (shown once; send it as 'Authorization: Bearer <token>'):"
                         f"\n{token}")(args, settings)


# Withdrawing staff access is effective at once in every process (see web/staff_access.py).
cmd_user_disable = offline_command(
    lambda a, ctx: staff_access.set_disabled(ctx.store, ctx.redis, a.username, True),
    lambda a, _: f"user {a.username} disabled; their sessions ended")
cmd_user_enable = offline_command(
    lambda a, ctx: staff_access.set_disabled(ctx.store, ctx.redis, a.username, False),
    lambda a, _: f"user {a.username} enabled")


def cmd_user_passwd(args: argparse.Namespace, settings: Settings) -> int:
    password = read_password(args.password_stdin)
    return offline_command(
        lambda a, ctx: staff_access.set_password(ctx.store, ctx.redis, a.username, password),
        lambda a, _: f"password of {a.username} changed; their sessions ended")(args, settings)


def _role_line(args: argparse.Namespace, user: dict[str, Any]) -> str:
    scope = f" on {', '.join(user['queues'])}" if user["queues"] else ""
    return f"user {user['username']} is now {user['role']}{scope}"


cmd_user_role = offline_command(
    lambda a, ctx: staff_access.set_role(ctx.store, ctx.redis, a.username, a.role, a.queue), _role_line)


def token_list_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("username", nargs="?", help="only this user's tokens")


def _token_table(args: argparse.Namespace, tokens: list[dict[str, Any]]) -> str:
    lines = [f"{'id':>5}  {'user':<20} {'scope':<6} {'state':<8} {'created':<21} expires"]
    for t in tokens:
        state = "active" if t["active"] else "revoked" if t["revoked_at"] else "expired"
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t["expires_at"])) if t["expires_at"] else "never"
        lines.append(f"{t['id']:>5}  {t['username']:<20} {t['scope'] or 'all':<6} {state:<8} {t['created_at']:<21} {expires}")
    return "\n".join(lines)


cmd_token_list = offline_command(lambda a, ctx: staff_access.list_tokens(ctx.store, a.username), _token_table)


def token_revoke_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("token_or_id", metavar="TOKEN_OR_ID", help="the token itself, or its id from `token list`")


cmd_token_revoke = offline_command(
    lambda a, ctx: staff_access.revoke_token(ctx.store, ctx.redis, a.token_or_id),
    lambda a, result: f"API token {result['id']} revoked")


def display_key_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("clinic")
    p.add_argument("--label", default="", help="where the screen hangs, e.g. 'lobby TV'")


cmd_display_key = offline_command(
    lambda a, ctx: access.create_display_key(ctx.store, ctx.redis, a.clinic, a.label),
    lambda a, key: f"display key for clinic {a.clinic} (shown once; open /display/{a.clinic}?key=<key>):\n{key}")


# -- DPDP: breach report --------------------------------------------------------------------------

def breach_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="start", required=True, metavar="WHEN", help="start of the window (ISO, UTC)")
    p.add_argument("--to", dest="end", required=True, metavar="WHEN", help="end of the window (ISO, UTC)")
    p.add_argument("--nature", choices=breach_report.NATURES, help="what happened (said in every notice)")
    p.add_argument("--measures", metavar="LIST",
                   help=f"what the clinic has done, comma-separated: {','.join(breach_report.MEASURES)}")
    p.add_argument("--aware", metavar="WHEN", help="when the clinic became aware (ISO, UTC; default now): "
                                                   "the Board's 72 hours run from it")
    p.add_argument("--send", action="store_true",
                   help="queue the notices to the affected people (default: only print them)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def cmd_breach_report(args: argparse.Namespace, settings: Settings) -> int:
    start, end = breach_report.parse_when("--from", args.start), breach_report.parse_when("--to", args.end)
    aware = breach_report.parse_when("--aware", args.aware) if args.aware else None
    nature, measures = breach_report.parse_incident(args.nature, args.measures)
    if args.send and (nature is None or not measures):
        raise Invalid("--send", "needs --nature and --measures: the notices must say what happened and what was done")

    async def report(ctx: Context) -> tuple[dict[str, Any], dict[str, Any] | None]:
        built = await breach_report.build(ctx.store, settings, start, end, nature=nature, measures=measures,
                                          aware_ms=aware)
        return built, await breach_report.send(ctx.redis, settings, built) if args.send else None

    built, sent = run_offline(settings, report)
    print(json.dumps({**breach_report.public(built), "sent": sent}, indent=2, ensure_ascii=False) if args.json
          else breach_report.markdown(built))
    if sent is not None and not args.json:
        print(f"Queued {sent['queued']} notices to {sent['people']} people ({sent['unreachable']} without a "
              "contact or a configured channel); each is sent once, however often this runs.")
    elif not args.json:
        print("Nothing was sent (a dry run): add --send to queue these notices.")
    return 0


# -- the table ---------------------------------------------------------------------------------

def no_arguments(p: argparse.ArgumentParser) -> None:
    """For commands that take none."""


@dataclass(frozen=True)
class Command:
    words: str  # "user add"
    help: str
    run: Callable[[argparse.Namespace, Settings], int]
    arguments: Callable[[argparse.ArgumentParser], None] = no_arguments


COMMANDS: list[Command] = [
    Command("serve", "run the server (with no QTRAQ_REDIS_URL: Redis and workers too)", cmd_serve, serve_arguments),
    Command("worker", "run an RQ worker for the notification queues", cmd_worker, worker_arguments),
    Command("duties", "run the primary's background duties (serve starts this itself)", cmd_duties),
    Command("demo", "serve a seeded demo clinic and print its URLs and logins", cmd_demo, demo_arguments),
    Command("user add", "create a staff user", cmd_user_add, user_add_arguments),
    Command("token create", "create an API token for a staff user", cmd_token_create, token_create_arguments),
    Command("user disable", "disable a staff user and end their sessions", cmd_user_disable, username_argument),
    Command("user enable", "enable a disabled staff user", cmd_user_enable, username_argument),
    Command("user passwd", "set a staff user's password (ends their sessions)", cmd_user_passwd, password_arguments),
    Command("user role", "change a staff user's role and queues", cmd_user_role, role_arguments),
    Command("token list", "list API tokens (never the secrets)", cmd_token_list, token_list_arguments),
    Command("token revoke", "revoke an API token by the token or its id", cmd_token_revoke, token_revoke_arguments),
    Command("display-key", "create a display key for a clinic's screens", cmd_display_key, display_key_arguments),
    Command("rebuild", "server stopped: replace the live Redis state with the SQLite record", cmd_rebuild),
    Command("purge", "apply the retention policy now", accounts_cli.cmd_purge),
    Command("breach-report", "list who and what a breach in a time window may touch; draft the notices",
            cmd_breach_report, breach_arguments),
    Command("import appointments", "import appointments from a CSV (name,mobile,email,queue,date,slot)",
            accounts_cli.cmd_import_appointments, accounts_cli.import_arguments),
    Command("abdm check", "check the ABDM Scan & Share settings against the gateway; print the bridge URL", abdm_cli.cmd_check),
]


def build_parser(commands: Sequence[Command] = COMMANDS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qtraq-live", description="Real-time clinic waiting-room server.")
    parser.add_argument("--version", action="version", version=f"qtraq-live {__version__}")
    groups: dict[tuple[str, ...], argparse._SubParsersAction[argparse.ArgumentParser]] = {
        (): parser.add_subparsers(dest="command", metavar="COMMAND", required=True)}
    for command in commands:
        words = tuple(command.words.split())
        for depth in range(1, len(words)):  # intermediate words: "user" in "user add"
            prefix = words[:depth]
            if prefix not in groups:
                sub = groups[prefix[:-1]].add_parser(prefix[-1], help=f"{' '.join(prefix)} commands")
                groups[prefix] = sub.add_subparsers(dest="_".join(prefix), metavar="COMMAND", required=True)
        p = groups[words[:-1]].add_parser(words[-1], help=command.help, description=command.help)
        command.arguments(p)
        p.set_defaults(handler=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        logs.configure_logging(settings)
        return int(args.handler(args, settings))
    except (ConfigError, Invalid) as exc:
        print(f"qtraq-live: error: {exc.message}", file=sys.stderr)
        return 2
    except QtraqError as exc:
        print(f"qtraq-live: error: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:  # a read-only or full data dir, a missing file: one line, no traceback
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"qtraq-live: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
