"""The `mailpulse` command (CONTRACT: CLI)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app import runtime
from app.embedded_redis import EmbeddedRedisError
from app.process import raise_open_files_limit
from app.settings import Settings, SettingsError
from queue_engine.accounts import (
    AccountError,
    EmailType,
    create_account,
    create_api_user,
    set_tracking_base_url,
)
from queue_engine.policy import PolicyError
from queue_engine.routing import RoutesError

if TYPE_CHECKING:
    from app.simulator import Profile


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailpulse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="web console + API, queue engine and inbound SMTP")
    run.add_argument("--demo", action="store_true", help="start the MP simulator and demo traffic")
    sub.add_parser("web", help="the web console and API alone")
    sub.add_parser("engine", help="the queue engine alone")
    sub.add_parser("inbound", help="the inbound SMTP server (DSN, ARF) alone")
    sim = sub.add_parser("simulate", help="the MP simulator alone (127.0.0.1 only)")
    sim.add_argument(
        "--port", type=int, default=2600, help="first port: profile i listens on PORT+i (0: free)"
    )
    sim.add_argument("--profiles", type=Path, help="profile file (default: app/mp_profiles.toml)")
    sim.add_argument(
        "--routes-file",
        type=Path,
        help="write a MAILPULSE_ROUTES file there (a restart reuses the ports it names)",
    )
    sim.add_argument(
        "--inbound",
        metavar="HOST:PORT",
        help="send DSNs (to bounce* recipients) and ARF reports (complain*) to this SMTP server",
    )
    demo = sub.add_parser("demo-traffic", help="send demo traffic through the API")
    demo.add_argument("--url", required=True, help="base URL of the API")
    account = sub.add_parser("account", help="manage accounts").add_subparsers(
        dest="action", required=True
    )
    create = account.add_parser("create", help="create an account; prints password and key")
    create.add_argument("name")
    create.add_argument("--email", required=True, help="the admin's email (console login)")
    create.add_argument("--json", action="store_true")
    tracking = account.add_parser(
        "tracking-url", help="set the account's base URL of tracked links (no URL: clear it)"
    )
    tracking.add_argument("name")
    tracking.add_argument("url", nargs="?", default="", help="e.g. https://click.example.com")
    api_user = sub.add_parser("api-user", help="manage API_USERs").add_subparsers(
        dest="action", required=True
    )
    au = api_user.add_parser("create", help="create an API_USER; prints its key once")
    au.add_argument("account")
    au.add_argument("name")
    au.add_argument("--type", choices=[t.value for t in EmailType], default="transactional")
    au.add_argument("--json", action="store_true")
    cls = sub.add_parser(
        "classify", help="classify SMTP replies or bounce/ARF emails; one JSON object per line"
    )
    what = cls.add_mutually_exclusive_group()
    what.add_argument(
        "--reply", metavar="TEXT", help='one SMTP reply, e.g. "550 5.1.1 no such user"'
    )
    what.add_argument(
        "--replies", metavar="FILE", help="a file of SMTP replies, one per line (- for stdin)"
    )
    cls.add_argument("files", nargs="*", metavar="FILE.eml", help="received emails (- for stdin)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "classify":  # pure parsing: no settings, no Redis
        return _classify(args)
    try:
        settings = Settings.from_environ()
        if settings.routes_file:
            runtime.router(settings)  # a bad routes file stops start-up, naming file and key
        runtime.policy(settings)  # so does a bad policy file, naming file, line and key
        return _dispatch(args, settings)
    except (SettingsError, RoutesError, PolicyError, EmbeddedRedisError, AccountError) as exc:
        print(f"mailpulse: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    command: str = args.command
    raise_open_files_limit()
    if command == "run":
        from app.supervisor import supervise

        return supervise(settings, demo=args.demo)
    runtime.configure_logging(settings, command)
    parts: dict[str, Callable[[Settings, str], Coroutine[Any, Any, None]]] = {
        "engine": _engine,
        "inbound": _inbound,
    }
    if command == "simulate":
        return _simulate_command(args)
    with runtime.redis_url(settings) as url:
        if command == "web":
            runtime.run(_web(settings, url))
        elif command in parts:
            _run_until_signal(parts[command](settings, url))
        elif command == "demo-traffic":
            _run_until_signal(_demo_traffic(settings, url, args.url))
        elif command == "account" and args.action == "tracking-url":
            return asyncio.run(_account_tracking_url(url, args))
        elif command == "account":
            return asyncio.run(_create_account(url, args))
        elif command == "api-user":
            return asyncio.run(_create_api_user(url, args))
    return 0


def _run_until_signal(coro: Awaitable[None]) -> None:
    """Run a long-lived part; SIGINT/SIGTERM end it cleanly (exit status 0)."""

    async def body() -> None:
        task = asyncio.ensure_future(coro)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    runtime.run(body())


async def _web(settings: Settings, url: str) -> None:
    import uvicorn

    from app.http_protocol import GuardedHttpProtocol
    from web.app import create_web_app

    app = create_web_app(runtime.api_config(settings), runtime.connect(url))
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        lifespan="on",
        http=GuardedHttpProtocol,  # slowloris: a deadline and a size cap on request headers
        # The console's frames are made once for every page; compressing them per socket
        # would cost per page what sharing saves (2-4 times the CPU of a tick, BENCHMARKS.md).
        ws_per_message_deflate=False,
    )

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # uvicorn would re-raise the signal after its shutdown, so the process
            # would die by it (exit 130/143) before our cleanup ran.
            yield

    server = Server(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    await server.serve()


async def _engine(settings: Settings, url: str) -> None:
    redis = runtime.connect(url)
    try:
        await runtime.engine(settings, redis).run()
    finally:
        await redis.aclose()


async def _inbound(settings: Settings, url: str) -> None:
    from queue_engine.inbound import serve_inbound

    if not settings.return_path_domain:
        logging.getLogger("mailpulse.inbound").warning(
            "MAILPULSE_RETURN_PATH_DOMAIN is unset: the inbound SMTP server refuses every recipient"
        )
    redis = runtime.connect(url)
    server = await serve_inbound(
        redis,
        settings.smtp_host,
        settings.smtp_port,
        settings.return_path_domain,
        settings.helo_name,
    )
    try:
        await server.serve_forever()
    finally:
        server.close()
        await redis.aclose()


def _simulate_command(args: argparse.Namespace) -> int:
    from app.simulator import DEFAULT_PROFILES, ProfileError, load_profiles

    try:
        profiles = load_profiles(args.profiles or DEFAULT_PROFILES)
        inbound = None
        if args.inbound:
            host, _, port = args.inbound.rpartition(":")
            if not host or not port.isdigit():
                raise ProfileError(f"--inbound {args.inbound!r}: expected HOST:PORT")
            inbound = (host.strip("[]"), int(port))
        _run_until_signal(_simulate(profiles, args.port, args.routes_file, inbound))
    except (ProfileError, OSError) as exc:  # OSError: a port in use, an unwritable routes file
        print(f"mailpulse: simulate: {exc}", file=sys.stderr)
        return 2
    return 0


async def _simulate(
    profiles: list[Profile],
    base_port: int,
    routes_file: Path | None,
    inbound: tuple[str, int] | None = None,
) -> None:
    """Every profile on 127.0.0.1; the routes file (if asked) once all of them listen."""
    from app.mp_reports import Reporter
    from app.simulator import Simulator, ports_from_routes, write_routes

    reporter = Reporter(inbound) if inbound else None
    # A restarted simulator takes back the ports its routes file gave out, since the
    # engine read that file once at start-up.
    previous = ports_from_routes(routes_file, profiles) if routes_file else {}
    try:
        simulator = await Simulator(
            profiles, base_port=base_port, ports=previous, reporter=reporter
        ).start()
    except OSError:
        if not previous:
            raise
        simulator = await Simulator(profiles, base_port=base_port, reporter=reporter).start()
    try:
        if routes_file is not None:
            write_routes(routes_file, simulator.routes())
        for line in simulator.describe():
            print(line, flush=True)
        await asyncio.Event().wait()
    finally:
        await simulator.stop()


async def _demo_traffic(settings: Settings, url: str, base_url: str) -> None:
    from app.demo import ensure_demo_account, send_demo_traffic

    redis = runtime.connect(url)
    try:
        creds = await ensure_demo_account(redis, settings.data_dir)
    finally:
        await redis.aclose()
    await send_demo_traffic(base_url, creds)


async def _create_account(url: str, args: argparse.Namespace) -> int:
    redis = runtime.connect(url)
    try:
        new = await create_account(redis, args.name, args.email)
    finally:
        await redis.aclose()
    if args.json:
        print(json.dumps({"account": new.account, "email": new.email,
                          "password": new.password, "account_key": new.account_key}))  # fmt: skip
    else:
        print(f"account:       {new.account}\nconsole login: {new.email}\n"
              f"password:      {new.password}\naccount key:   {new.account_key}\n"
              "(shown once; store them now)")  # fmt: skip
    return 0


async def _account_tracking_url(url: str, args: argparse.Namespace) -> int:
    redis = runtime.connect(url)
    try:
        base = await set_tracking_base_url(redis, args.name, args.url)
    finally:
        await redis.aclose()
    print(f"tracking base URL of {args.name}: {base or '(MAILPULSE_TRACKING_BASE_URL)'}")
    return 0


async def _create_api_user(url: str, args: argparse.Namespace) -> int:
    redis = runtime.connect(url)
    try:
        new = await create_api_user(redis, args.account, args.name, EmailType(args.type))
    finally:
        await redis.aclose()
    if args.json:
        print(json.dumps({"account": new.account, "api_user": new.api_user,
                          "api_key": new.api_key, "type": new.type.value}))  # fmt: skip
    else:
        print(f"API_USER: {new.api_user} ({new.type.value}) of account {new.account}\n"
              f"API key:  {new.api_key}\n(shown once; store it now)")  # fmt: skip
    return 0


def _classify(args: argparse.Namespace) -> int:
    """`mailpulse classify`: CONTRACT lines for replies (kind "reply") or received emails."""
    from queue_engine.reports import finding_json, parse_report, reply_finding

    if args.files and (args.reply is not None or args.replies is not None):
        print("mailpulse: classify: give --reply, --replies or files, not several", file=sys.stderr)
        return 2
    if args.reply is None and args.replies is None and not args.files:
        print("mailpulse: classify: give --reply TEXT, --replies FILE or FILE.eml", file=sys.stderr)
        return 2
    status = 0
    try:
        if args.reply is not None:
            print(json.dumps(finding_json(reply_finding(args.reply), "--reply")), flush=True)
        elif args.replies is not None:
            raw = (
                sys.stdin.buffer.read() if args.replies == "-" else Path(args.replies).read_bytes()
            )
            for number, line in enumerate(raw.decode("utf-8", "replace").splitlines(), start=1):
                if line.strip():
                    line_json = finding_json(reply_finding(line), f"{args.replies}:{number}")
                    print(json.dumps(line_json), flush=True)
        for name in args.files:
            try:
                data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
            except OSError as exc:
                print(f"mailpulse: classify: {name}: {exc.strerror or exc}", file=sys.stderr)
                status = 1
                continue
            for finding in parse_report(data):
                print(json.dumps(finding_json(finding, name)), flush=True)
    except OSError as exc:  # an unreadable --replies file, or a closed stdout
        print(f"mailpulse: classify: {exc}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
