"""`stationwatch hq ...`: run HQ, manage its database, users, API tokens, sites, agents and
enrollment tokens.

Commands print secrets (tokens) alone on stdout so scripts can capture them; everything else goes
to stderr. Only `serve` and `db upgrade` create a database; every other command refuses (exit 2)
when there is none where it looks (a mistyped or forgotten --data-dir would otherwise make a new,
empty one, and print a token the running HQ rejects). An existing database is first migrated to
the code's revision (except by `db downgrade`).
"""

from __future__ import annotations

import argparse
import gc
import getpass
import ipaddress
import logging
import sys
import unicodedata
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from sqlalchemy.exc import SQLAlchemyError

from hq_server.access import secretbox
from hq_server.access.auth import create_api_token, list_api_tokens, revoke_api_token
from hq_server.access.users import create_user, find_user, set_password, token_for_user
from hq_server.core.clock import OffsetClock, SystemClock
from hq_server.core.domain import Role
from hq_server.core.errors import ConfigError, HQError, NotFound
from hq_server.core.settings import ENV_DATA_DIR, ENV_DB_URL, Settings
from hq_server.customers.records import find_customer, set_site_customer
from hq_server.sites.agents import list_agents, revoke_agent, state_of
from hq_server.sites.enrollment import (
    create_enrollment_token,
    list_enrollment_tokens,
    new_site_token,
    reenrollment_target,
    revoke_enrollment_token,
)
from hq_server.sites.registry import check_site_name, check_timezone, ensure_site, find_site
from hq_server.store import db as dbmod
from hq_server.tickets.deadlines import refresh_open_tickets
from stationwatch.pipes import quiet_on_broken_pipe

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
MAX_TOKEN_DAYS = 3650
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
    create.add_argument(
        "--days",
        type=float,
        default=None,
        help="lifetime in days (default: the setting api_token_lifetime, 90 days; at most "
        f"{MAX_TOKEN_DAYS}); tokens from a login last user_token_lifetime (12 h)",
    )
    listing = token_commands.add_parser(
        "list", parents=[common], help="list usable API tokens (never the tokens themselves)"
    )
    listing.add_argument("--all", action="store_true", help="revoked and expired ones too")
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
    user_add.add_argument("name", help="username (unique, whatever its case)")
    user_add.add_argument("--role", required=True, choices=[r.value for r in Role])
    user_passwd = user_commands.add_parser(
        "passwd",
        parents=[common],
        help="set a user's password (read like `user add`); revokes all the user's API tokens",
    )
    user_passwd.add_argument("name", help="username")

    site = commands.add_parser("site", help="sites and their enrollment tokens")
    site_commands = site.add_subparsers(dest="site_command", required=True, metavar="ACTION")
    add = site_commands.add_parser(
        "add",
        parents=[common],
        help="create a site if missing and print a new one-time enrollment token on stdout",
    )
    add.add_argument("name", help="site name (unique; at most 100 characters, any script)")
    add.add_argument("--customer", default="", help="customer owning the site")
    add.add_argument("--contact", default="", help="on-site contact")
    add.add_argument("--timezone", default="UTC", help="IANA timezone, e.g. Asia/Shanghai")
    _ttl_option(add)
    add.add_argument(
        "--additional",
        action="store_true",
        help="the site already has an active agent and gets one more (to replace a box, use "
        "`site reenroll`)",
    )
    reenroll = site_commands.add_parser(
        "reenroll",
        parents=[common],
        help="the site's box was replaced: print a one-time token whose use retires the site's "
        "active agent (its token stops working; alarms and tickets stay with the site)",
    )
    reenroll.add_argument("name", help="site name")
    reenroll.add_argument(
        "--agent", type=int, default=None, help="the agent to replace, if the site has several"
    )
    _ttl_option(reenroll)
    site_customer = site_commands.add_parser(
        "customer",
        parents=[common],
        help="put a site under a customer record (its contract's SLA policy applies to the "
        "site's tickets), or under none without CUSTOMER",
    )
    site_customer.add_argument("name", help="site name")
    site_customer.add_argument(
        "customer", nargs="?", default=None, help="customer name (as created in the API)"
    )

    agent = commands.add_parser("agent", help="enrolled agents")
    agent_commands = agent.add_subparsers(dest="agent_command", required=True, metavar="ACTION")
    agent_list = agent_commands.add_parser(
        "list", parents=[common], help="list active agents with their last heartbeat"
    )
    agent_list.add_argument("--all", action="store_true", help="revoked and replaced ones too")
    agent_revoke = agent_commands.add_parser(
        "revoke",
        parents=[common],
        help="revoke an agent (e.g. a stolen box): its token is refused at once, its jobs "
        "cancelled",
    )
    agent_revoke.add_argument("id", type=int, help="agent id, from `agent list`")

    enrollment = commands.add_parser("enrollment", help="one-time enrollment tokens")
    enrollment_commands = enrollment.add_subparsers(
        dest="enrollment_command", required=True, metavar="ACTION"
    )
    enrollment_list = enrollment_commands.add_parser(
        "list", parents=[common], help="list pending enrollment tokens (never the tokens)"
    )
    enrollment_list.add_argument(
        "--all", action="store_true", help="used, expired and revoked ones too"
    )
    enrollment_revoke = enrollment_commands.add_parser(
        "revoke", parents=[common], help="revoke a pending enrollment token"
    )
    enrollment_revoke.add_argument("id", type=int, help="token id, from `enrollment list`")

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


def _ttl_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ttl-hours",
        type=float,
        default=24.0,
        help="validity of the enrollment token in hours (default 24)",
    )


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


class NoDatabase(HQError):
    """The command needs an existing HQ database and there is none where it looks."""


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
    """Create the data dir when HQ uses its SQLite file there, migrate; return the database URL.
    Only `serve` and `db upgrade` may create a database."""
    url = settings.database_url
    dbmod.parse_url(url)
    if settings.uses_default_sqlite:
        try:
            _private_dir(settings.data_dir)
        except OSError as exc:
            raise ConfigError(f"cannot create data dir {settings.data_dir}: {exc}") from None
    dbmod.upgrade(url)
    return url


def _no_database(where: str) -> NoDatabase:
    return NoDatabase(
        f"no HQ database {where}: pass the --data-dir (or --db-url) of the HQ this is for, "
        f"or create a database with `stationwatch hq db upgrade`"
    )


def _existing(settings: Settings, *, migrate: bool = True) -> str:
    """The URL of the existing HQ database (migrated to the code's revision unless `migrate` is
    false); NoDatabase when there is none, and nothing is created."""
    url = settings.database_url
    parsed = dbmod.parse_url(url)
    if parsed.get_backend_name() == "sqlite":
        assert parsed.database is not None
        path = Path(parsed.database).expanduser().resolve()
        if not path.is_file():  # opening it would create it
            raise _no_database(f"at {path}")
    engine = dbmod.make_engine(url)
    try:
        with dbmod.translate_errors(url), engine.connect() as conn:
            heads = MigrationContext.configure(conn).get_current_heads()
    finally:
        engine.dispose()
    if not heads:
        raise _no_database(f"in {dbmod.safe_url(url)} (it holds no HQ schema)")
    if migrate:
        dbmod.upgrade(url)
    return url


def _cli_actor() -> str:
    """Who acts, for revoked_by: the OS user running the command."""
    try:
        return f"{getpass.getuser()} (command line)"
    except (KeyError, OSError):
        return "command line"


def _cell(text: str, width: int) -> str:
    """`text` padded to `width` terminal columns (CJK characters take two)."""
    used = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return text + " " * max(0, width - used)


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}" if value is not None else "-"


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
    clock = OffsetClock(settings.clock_offset_file) if settings.clock_offset_file else None
    app = create_app(settings, clock=clock)
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
    if args.days is None:
        lifetime = settings.api_token_lifetime
    elif 0 < args.days <= MAX_TOKEN_DAYS:
        lifetime = timedelta(days=args.days)
    else:
        raise ConfigError(f"--days must be more than 0 and at most {MAX_TOKEN_DAYS}")
    database = dbmod.Database(_existing(settings))
    now = SystemClock().now()
    try:
        with database.writer() as session, session.begin():
            if args.user is not None:
                token = token_for_user(session, args.user, now, lifetime)
            else:
                role = Role(args.role)
                token = create_api_token(
                    session, args.name or role.value, role, now, lifetime=lifetime
                )
    finally:
        database.dispose()
    print(f"token valid until {_when(now + lifetime)} UTC", file=sys.stderr)
    print(token)
    return EXIT_OK


def _cmd_token_list(args: argparse.Namespace, settings: Settings) -> int:
    database = dbmod.Database(_existing(settings))
    now = SystemClock().now()
    try:
        with database.session() as session:
            tokens = list_api_tokens(session, usable_at=None if args.all else now)
    finally:
        database.dispose()
    print(f"{'id':>5}  {'role':<8}  {'user':<16}  {'created':<19}  {'expires':<19}  state    name")
    for t in tokens:
        print(
            f"{t.id:>5}  {t.role.value:<8}  {_cell(t.username or '-', 16)}  {_when(t.created_at)}  "
            f"{_when(t.expires_at)}  {t.state(now):<7}  {t.name}"
        )
    return EXIT_OK


def _cmd_token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    database = dbmod.Database(_existing(settings))
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
    database = dbmod.Database(_existing(settings))
    password = _read_password()
    try:
        with database.writer() as session, session.begin():
            user = create_user(
                session,
                args.name,
                Role(args.role),
                password,
                SystemClock().now(),
                min_length=settings.password_min_length,
            )
            print(f"user {user.username!r} (id {user.id}, {user.role}) created", file=sys.stderr)
    finally:
        database.dispose()
    return EXIT_OK


def _cmd_user_passwd(args: argparse.Namespace, settings: Settings) -> int:
    database = dbmod.Database(_existing(settings))
    password = _read_password()
    try:
        with database.writer() as session, session.begin():
            user = find_user(session, args.name)
            if user is None:
                raise ConfigError(f"no user {args.name!r}")
            revoked = set_password(
                session,
                user,
                password,
                SystemClock().now(),
                min_length=settings.password_min_length,
            )
    finally:
        database.dispose()
    print(
        f"password of {user.username!r} changed; {revoked} API tokens of the user revoked",
        file=sys.stderr,
    )
    return EXIT_OK


def _ttl(args: argparse.Namespace) -> timedelta:
    if args.ttl_hours <= 0:
        raise ConfigError("--ttl-hours must be positive")
    return timedelta(hours=args.ttl_hours)


def _cmd_site_add(args: argparse.Namespace, settings: Settings) -> int:
    check_site_name(args.name)
    check_timezone(args.timezone)
    ttl = _ttl(args)
    database = dbmod.Database(_existing(settings))
    now = SystemClock().now()
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
            token = new_site_token(session, site, now, ttl, additional=args.additional)
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


def _cmd_site_customer(args: argparse.Namespace, settings: Settings) -> int:
    database = dbmod.Database(_existing(settings))
    now = SystemClock().now()
    try:
        with database.writer() as session, session.begin():
            site = find_site(session, args.name)
            customer = None
            if args.customer is not None:
                customer = find_customer(session, args.customer)
                if customer is None:
                    raise NotFound(f"no customer {args.customer!r}")
            set_site_customer(session, site, customer)
            session.flush()
            moved = refresh_open_tickets(session, [site.id], now, "cli", "site's customer changed")
            site_name = site.name
    finally:
        database.dispose()
    under = f"customer {customer.name!r}" if customer is not None else "no customer"
    print(
        f"site {site_name!r} is under {under}; {moved} open tickets' deadlines moved",
        file=sys.stderr,
    )
    return EXIT_OK


def _cmd_site_reenroll(args: argparse.Namespace, settings: Settings) -> int:
    ttl = _ttl(args)
    database = dbmod.Database(_existing(settings))
    now = SystemClock().now()
    try:
        with database.writer() as session, session.begin():
            site = find_site(session, args.name)
            old = reenrollment_target(session, site, args.agent)
            token = create_enrollment_token(session, site, now, ttl, replaces=old)
    finally:
        database.dispose()
    print(
        f"site {site.name!r}: one-time re-enrollment token below, valid until "
        f"{(now + ttl).isoformat(timespec='seconds')}; when a new agent enrolls with it, agent "
        f"{old.id} ({old.name}) is retired",
        file=sys.stderr,
    )
    print(token)
    return EXIT_OK


def _cmd_agent_list(args: argparse.Namespace, settings: Settings) -> int:
    database = dbmod.Database(_existing(settings))
    try:
        with database.session() as session:
            agents = list_agents(session, active=None if args.all else True)
            rows = [(a, a.site.name) for a in agents]
    finally:
        database.dispose()
    print(
        f"{'id':>5}  {'site':<24}  {'hostname':<20}  {'version':<10}  {'enrolled':<19}  "
        f"{'last heartbeat':<19}  state"
    )
    for agent, site_name in rows:
        state = state_of(agent).value
        if agent.replaced_by_id is not None:
            state += f" by {agent.replaced_by_id}"
        print(
            f"{agent.id:>5}  {_cell(site_name, 24)}  {_cell(agent.name, 20)}  {agent.version:<10}  "
            f"{_when(agent.enrolled_at)}  {_when(agent.health_at):<19}  {state}"
        )
    return EXIT_OK


def _cmd_agent_revoke(args: argparse.Namespace, settings: Settings) -> int:
    database = dbmod.Database(_existing(settings))
    try:
        with database.writer() as session, session.begin():
            agent, newly = revoke_agent(session, args.id, SystemClock().now(), _cli_actor())
            name, site_name = agent.name, agent.site.name
    finally:
        database.dispose()
    state = "revoked: its token is refused from now on" if newly else "was already revoked"
    print(f"agent {args.id} ({name}, site {site_name!r}) {state}", file=sys.stderr)
    return EXIT_OK


def _cmd_enrollment_list(args: argparse.Namespace, settings: Settings) -> int:
    database = dbmod.Database(_existing(settings))
    now = SystemClock().now()
    try:
        with database.session() as session:
            tokens = list_enrollment_tokens(session, now, pending_only=not args.all)
    finally:
        database.dispose()
    print(f"{'id':>5}  {'site':<24}  {'created':<19}  {'expires':<19}  {'state':<8}  replaces")
    for t in tokens:
        replaces = str(t.replaces_agent_id) if t.replaces_agent_id is not None else "-"
        print(
            f"{t.id:>5}  {_cell(t.site_name, 24)}  {_when(t.created_at)}  {_when(t.expires_at)}  "
            f"{t.state.value:<8}  {replaces}"
        )
    return EXIT_OK


def _cmd_enrollment_revoke(args: argparse.Namespace, settings: Settings) -> int:
    database = dbmod.Database(_existing(settings))
    try:
        with database.writer() as session, session.begin():
            info, newly = revoke_enrollment_token(
                session, args.id, SystemClock().now(), _cli_actor()
            )
    finally:
        database.dispose()
    state = "revoked" if newly else "was already revoked"
    print(f"enrollment token {info.id} (site {info.site_name!r}) {state}", file=sys.stderr)
    return EXIT_OK


def _cmd_db_upgrade(_args: argparse.Namespace, settings: Settings) -> int:
    _prepare(settings)
    print(f"database {dbmod.safe_url(settings.database_url)} is up to date", file=sys.stderr)
    return EXIT_OK


def _cmd_db_unseal(_args: argparse.Namespace, settings: Settings) -> int:
    url = _existing(settings)
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
        if args.site_command == "reenroll":
            return _cmd_site_reenroll(args, settings)
        if args.site_command == "customer":
            return _cmd_site_customer(args, settings)
        return _cmd_site_add(args, settings)
    if args.command == "user":
        if args.user_command == "passwd":
            return _cmd_user_passwd(args, settings)
        return _cmd_user_add(args, settings)
    if args.command == "agent":
        if args.agent_command == "revoke":
            return _cmd_agent_revoke(args, settings)
        return _cmd_agent_list(args, settings)
    if args.command == "enrollment":
        if args.enrollment_command == "revoke":
            return _cmd_enrollment_revoke(args, settings)
        return _cmd_enrollment_list(args, settings)
    if args.db_command == "unseal":
        return _cmd_db_unseal(args, settings)
    if args.db_command == "downgrade":
        dbmod.downgrade(_existing(settings, migrate=False), args.revision)
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
    except NoDatabase as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
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
    raise SystemExit(quiet_on_broken_pipe(lambda: run(sys.argv[1:])))


if __name__ == "__main__":
    main()
