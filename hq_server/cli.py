"""`stationwatch hq ...`: run HQ, manage its database, users, API tokens and enrollment tokens.

Commands print secrets (tokens) alone on stdout so scripts can capture them; everything else goes
to stderr. Every command first migrates the database to the code's revision.
"""

from __future__ import annotations

import argparse
import gc
import getpass
import ipaddress
import logging
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from hq_server import db as dbmod
from hq_server import secretbox
from hq_server.auth import create_api_token, list_api_tokens, revoke_api_token
from hq_server.clock import SystemClock
from hq_server.domain import Role
from hq_server.enrollment import check_timezone, create_enrollment_token, ensure_site
from hq_server.errors import ConfigError, HQError
from hq_server.settings import ENV_DATA_DIR, ENV_DB_URL, Settings
from hq_server.users import create_user, token_for_user

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
# Allocations between gen-0 collections of the HQ server (Python's default: 700).
GC_GEN0_THRESHOLD = 20_000


def _common_options() -> argparse.ArgumentParser:
    """Options accepted before or after the subcommand (defaults are resolved later)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        type=Path,
        default=argparse.SUPPRESS,
        help=f"directory of HQ's SQLite database (env {ENV_DATA_DIR}; default ./var/hq)",
    )
    common.add_argument(
        "--db-url",
        default=argparse.SUPPRESS,
        help=f"database URL, e.g. postgresql+psycopg://user@host/db (env {ENV_DB_URL}); "
        "default: SQLite in the data dir",
    )
    common.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default=argparse.SUPPRESS,
        help="log level on stderr",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `stationwatch hq`."""
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="stationwatch hq", description="StationWatch HQ server", parents=[common]
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", parents=[common], help="run the HQ web server")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    serve.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    serve.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host (HQ speaks plain HTTP: put TLS in front of it)",
    )

    token = commands.add_parser("token", help="API tokens for people and scripts")
    token_commands = token.add_subparsers(dest="what", required=True, metavar="ACTION")
    create = token_commands.add_parser(
        "create", parents=[common], help="create an API token and print it (only it) on stdout"
    )
    owner = create.add_mutually_exclusive_group(required=True)
    owner.add_argument("--role", choices=[r.value for r in Role], help="a standalone token")
    owner.add_argument("--user", help="a token of this user (with the user's role)")
    create.add_argument("--name", default=None, help="what the token is for (default: the role)")
    listing = token_commands.add_parser(
        "list", parents=[common], help="list API tokens (never the tokens themselves)"
    )
    listing.add_argument("--all", action="store_true", help="revoked ones too")
    revoke = token_commands.add_parser(
        "revoke", parents=[common], help="revoke an API token (refused at once)"
    )
    revoke.add_argument("id", type=int, help="token id, from `token list`")

    user = commands.add_parser("user", help="users who log in with a password")
    user_commands = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    user_add = user_commands.add_parser(
        "add",
        parents=[common],
        help="create a user; the password is read from stdin (or prompted on a terminal)",
    )
    user_add.add_argument("name", help="username (unique)")
    user_add.add_argument("--role", required=True, choices=[r.value for r in Role])

    site = commands.add_parser("site", help="sites and their enrollment tokens")
    site_commands = site.add_subparsers(dest="site_command", required=True, metavar="ACTION")
    add = site_commands.add_parser(
        "add",
        parents=[common],
        help="create a site if missing and print a new one-time enrollment token on stdout",
    )
    add.add_argument("name", help="site name (unique)")
    add.add_argument("--customer", default="", help="customer owning the site")
    add.add_argument("--contact", default="", help="on-site contact")
    add.add_argument("--timezone", default="UTC", help="IANA timezone, e.g. Asia/Shanghai")
    add.add_argument(
        "--ttl-hours",
        type=float,
        default=24.0,
        help="validity of the enrollment token in hours (default 24)",
    )

    database = commands.add_parser("db", help="database maintenance")
    db_commands = database.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_commands.add_parser("upgrade", parents=[common], help="migrate the database to this version")
    db_commands.add_parser(
        "unseal",
        parents=[common],
        help="put webhook keys back in plain text, before going back to a version that does not "
        "seal them; stop every HQ of the database first (HQ of this version seals them again "
        "when it starts)",
    )
    downgrade = db_commands.add_parser(
        "downgrade",
        parents=[common],
        help="migrate the database back to REVISION, for going back to an older version (stop "
        "every HQ of the database and run `hq db unseal` first)",
    )
    downgrade.add_argument("revision", help="the revision the older version needs, e.g. 0005")
    return parser


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (a host name other than localhost is not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        data_dir=getattr(args, "data_dir", None),
        db_url=getattr(args, "db_url", None),
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        allow_remote=getattr(args, "allow_remote", None),
    )


# Library loggers kept at WARNING unless --log-level debug (uvicorn's access log is switched
# off in `serve` instead: uvicorn sets that logger's level itself).
LIBRARY_LOGGERS = ("apscheduler", "asyncio", "httpx", "httpcore")


def quiet_libraries(level: str) -> None:
    """Library chatter (APScheduler's "Running job ..." every few seconds) out of HQ's log."""
    library_level = logging.DEBUG if level == "debug" else logging.WARNING
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(library_level)


def _private_dir(path: Path) -> None:
    """Create HQ's data dir (and missing parents); the dir itself 0700, whatever the umask: the
    database in it holds every site's faults. An existing dir keeps its mode."""
    if path.is_dir():
        return
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def _prepare(settings: Settings) -> str:
    """Create the data dir when HQ uses its SQLite file there, migrate; return the database URL."""
    url = settings.database_url
    dbmod.parse_url(url)
    if settings.uses_default_sqlite:
        try:
            _private_dir(settings.data_dir)
        except OSError as exc:
            raise ConfigError(f"cannot create data dir {settings.data_dir}: {exc}") from None
    dbmod.upgrade(url)
    return url


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    if not is_loopback(settings.host) and not settings.allow_remote:
        print(
            f"error: refusing to listen on {settings.host!r}, which is not a loopback address; "
            "HQ serves plain HTTP, so put a TLS proxy in front of it and pass --allow-remote",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from hq_server.app import create_app, establish_key
    from hq_server.serving import serve, server_config

    db = dbmod.Database(_prepare(settings))
    try:  # here too, not only at app start: a wrong key file is a one-line error, no traceback
        establish_key(db, settings, SystemClock())
    finally:
        db.dispose()
    app = create_app(settings)
    config = server_config(app, settings, getattr(args, "log_level", "info"))
    # A batch of events allocates many short-lived objects; the default gen-0 threshold (700)
    # runs the cycle collector dozens of times per batch over the whole, long-lived heap of
    # the frameworks. Freeze what startup built and collect less often.
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 50, 100)
    print(
        f"HQ listening on http://{settings.host}:{settings.port} "
        f"(database {dbmod.safe_url(settings.database_url)})",
        file=sys.stderr,
    )
    return serve(config)


def _cmd_token_create(args: argparse.Namespace, settings: Settings) -> int:
    url = _prepare(settings)
    database = dbmod.Database(url)
    now = SystemClock().now()
    try:
        with database.writer() as session, session.begin():
            if args.user is not None:
                token = token_for_user(session, args.user, now)
            else:
                role = Role(args.role)
                token = create_api_token(session, args.name or role.value, role, now)
    finally:
        database.dispose()
    print(token)
    return EXIT_OK


def _cmd_token_list(args: argparse.Namespace, settings: Settings) -> int:
    database = dbmod.Database(_prepare(settings))
    try:
        with database.session() as session:
            tokens = list_api_tokens(session, revoked=None if args.all else False)
    finally:
        database.dispose()
    print(f"{'id':>5}  {'role':<8}  {'user':<16}  {'created':<20}  {'revoked':<20}  name")
    for t in tokens:
        revoked = f"{t.revoked_at:%Y-%m-%d %H:%M:%S}" if t.revoked_at else "-"
        print(
            f"{t.id:>5}  {t.role.value:<8}  {t.username or '-':<16}  "
            f"{t.created_at:%Y-%m-%d %H:%M:%S}  {revoked:<20}  {t.name}"
        )
    return EXIT_OK


def _cmd_token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    database = dbmod.Database(_prepare(settings))
    try:
        with database.writer() as session, session.begin():
            token, newly = revoke_api_token(session, args.id, SystemClock().now())
    finally:
        database.dispose()
    state = "revoked" if newly else "was already revoked"
    print(f"token {token.id} ({token.name}) {state}", file=sys.stderr)
    return EXIT_OK


def _read_password() -> str:
    """The new password: prompted twice on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise ConfigError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _cmd_user_add(args: argparse.Namespace, settings: Settings) -> int:
    password = _read_password()
    url = _prepare(settings)
    database = dbmod.Database(url)
    try:
        with database.writer() as session, session.begin():
            user = create_user(session, args.name, Role(args.role), password, SystemClock().now())
            print(f"user {user.username!r} (id {user.id}, {user.role}) created", file=sys.stderr)
    finally:
        database.dispose()
    return EXIT_OK


def _cmd_site_add(args: argparse.Namespace, settings: Settings) -> int:
    check_timezone(args.timezone)
    if args.ttl_hours <= 0:
        raise ConfigError("--ttl-hours must be positive")
    url = _prepare(settings)
    database = dbmod.Database(url)
    now = SystemClock().now()
    ttl = timedelta(hours=args.ttl_hours)
    try:
        with database.writer() as session, session.begin():
            site, created = ensure_site(
                session,
                args.name,
                now,
                customer=args.customer,
                contact=args.contact,
                timezone=args.timezone,
            )
            token = create_enrollment_token(session, site, now, ttl)
    finally:
        database.dispose()
    state = "created" if created else "exists"
    print(
        f"site {site.name!r} (id {site.id}) {state}; one-time enrollment token below, "
        f"valid until {(now + ttl).isoformat(timespec='seconds')}",
        file=sys.stderr,
    )
    print(token)
    return EXIT_OK


def _cmd_db_upgrade(_args: argparse.Namespace, settings: Settings) -> int:
    _prepare(settings)
    print(f"database {dbmod.safe_url(settings.database_url)} is up to date", file=sys.stderr)
    return EXIT_OK


def _cmd_db_unseal(_args: argparse.Namespace, settings: Settings) -> int:
    url = _prepare(settings)
    db = dbmod.Database(url)
    try:
        with db.writer() as session, session.begin():
            opened = secretbox.unseal_stored(session, settings)
    except secretbox.SecretUnavailable as exc:
        print(
            f"error: {exc}: its webhook key does not open with {secretbox.key_file(settings)}; "
            "nothing was changed",
            file=sys.stderr,
        )
        return EXIT_ERROR
    finally:
        db.dispose()
    print(
        f"opened the webhook keys of {opened} escalation chains and tickets: they are in plain "
        "text in the database now, until an HQ of this version starts and seals them again",
        file=sys.stderr,
    )
    return EXIT_OK


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "serve":
        return _cmd_serve(args, settings)
    if args.command == "token":
        if args.what == "list":
            return _cmd_token_list(args, settings)
        if args.what == "revoke":
            return _cmd_token_revoke(args, settings)
        return _cmd_token_create(args, settings)
    if args.command == "site":
        return _cmd_site_add(args, settings)
    if args.command == "user":
        return _cmd_user_add(args, settings)
    if args.db_command == "unseal":
        return _cmd_db_unseal(args, settings)
    if args.db_command == "downgrade":
        dbmod.downgrade(settings.database_url, args.revision)
        print(f"database is at revision {args.revision}", file=sys.stderr)
        return EXIT_OK
    return _cmd_db_upgrade(args, settings)


def run(argv: Sequence[str]) -> int:
    """Run `stationwatch hq` with these arguments (those after `hq`); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:  # argparse exits on --help and on usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    default_level = "info" if args.command in ("serve", "db") else "warning"
    level = getattr(args, "log_level", default_level)
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    quiet_libraries(level)
    try:
        settings = _settings(args)
        return _dispatch(args, settings)
    except HQError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except SQLAlchemyError as exc:  # e.g. permission denied on the schema
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        print(f"error: database error: {reason}", file=sys.stderr)
        return EXIT_ERROR
    except ValueError as exc:  # settings validation (pydantic) and similar bad input
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def main() -> None:
    """Entry point for `python -m hq_server.cli`."""
    raise SystemExit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
