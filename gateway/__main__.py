"""python -m gateway [serve] [--port N] [--workers W]: the REST API (dispatchers
included unless GATEWAY_DISPATCHERS=false). With several workers, W processes
share the port (the kernel spreads connections), each with its own dispatchers.

python -m gateway keys create|list|revoke: manage API keys, in the Redis of
REDIS_URL, else of the running `make run` stack (its stack.json: PERCEPT_RUN_DIR,
else .run/ in the current directory or a parent), else redis://127.0.0.1:6379/0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import uvicorn

from gateway.settings import GatewaySettings
from percept_runtime.logs import configure_logging

_SIZES = {"k": 1024, "m": 1024**2, "g": 1024**3}


def _bytes(text: str) -> int:
    text = text.strip().lower().removesuffix("ib").removesuffix("b")
    if text and text[-1] in _SIZES:
        return int(float(text[:-1]) * _SIZES[text[-1]])
    return int(text)


def _human_bytes(n: float) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{n:.0f} B"


def _limits_text(limits) -> str:
    """A key's limits for people: "rps=5, burst=10, bytes=500 MiB" ("none": unlimited)."""
    shown = []
    for name, value in vars(limits).items():
        if not value:
            continue
        if name == "bytes":
            text = _human_bytes(value)
        else:
            text = str(int(value)) if float(value).is_integer() else f"{value:g}"
        shown.append(f"{name}={text}")
    return ", ".join(shown) or "no limits"


def _stack_redis() -> tuple[str, Path] | None:
    """The running `make run` stack's Redis, from its stack.json (as the SDK finds it:
    PERCEPT_RUN_DIR, else .run/ here or in a parent; a stale file is skipped)."""
    run_dir = os.environ.get("PERCEPT_RUN_DIR")
    here = Path.cwd().resolve()
    candidates = (
        [Path(run_dir) / "stack.json"]
        if run_dir
        else [d / ".run" / "stack.json" for d in (here, *here.parents)]
    )
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        return None
    try:
        info = json.loads(path.read_text())
        url, pid = str(info["redis_url"]), int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # stale: that stack has stopped
    except PermissionError:
        pass  # running, as another user
    return url, path


def _shown(url: str) -> str:
    """A Redis URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _redis_url() -> str:
    """REDIS_URL (or GATEWAY_REDIS_URL), else the stack's, else the default; says which."""
    if os.environ.get("REDIS_URL") or os.environ.get("GATEWAY_REDIS_URL"):
        return GatewaySettings().redis_url
    found = _stack_redis()
    if found:
        url, path = found
        print(f"using the make run stack's Redis {_shown(url)} (from {path})", file=sys.stderr)
        return url
    url = GatewaySettings().redis_url
    print(
        f"no REDIS_URL and no running make run stack found: using {_shown(url)}",
        file=sys.stderr,
    )
    return url


def serve(args: argparse.Namespace) -> None:
    # Flags become env, so every worker process (which builds its own settings) sees them.
    for name, value in (("HOST", args.host), ("PORT", args.port), ("WORKERS", args.workers)):
        if value is not None:
            os.environ[f"GATEWAY_{name}"] = str(value)
    if args.no_dispatchers:
        os.environ["GATEWAY_DISPATCHERS"] = "false"
    settings = GatewaySettings()
    configure_logging(settings.log_level)
    common = dict(
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=10,
        access_log=False,
        root_path=settings.root_path,
        # X-Forwarded-For/-Proto only from the proxies GATEWAY_FORWARDED_ALLOW_IPS names
        # (uvicorn's own default believes any on 127.0.0.1): the client address the
        # sign-in throttle counts under is the TCP peer's otherwise.
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
    )
    if settings.workers > 1:
        uvicorn.run("gateway.app:create_app", factory=True, workers=settings.workers, **common)
    else:
        from gateway.app import create_app

        uvicorn.run(create_app(settings), **common)


async def keys(args: argparse.Namespace) -> int:
    import redis.asyncio as aioredis

    from gateway.keys import KeyStore, Limits
    from gateway.redis_client import redis_client

    try:
        url = _redis_url()
        client = redis_client(url)
    except ValueError as error:  # a malformed REDIS_URL (pydantic's error is a ValueError)
        message = error.errors()[0]["msg"] if hasattr(error, "errors") else str(error)
        print(f"error: {message}", file=sys.stderr)
        return 2
    store = KeyStore(client)
    try:
        await client.ping()
    except (aioredis.RedisError, OSError) as error:
        print(f"error: cannot reach Redis at {_shown(url)}: {error}", file=sys.stderr)
        await client.aclose()
        return 3
    try:
        if args.action == "create":
            try:
                limits = Limits(args.rps, args.burst, args.tasks, _bytes(args.bytes), args.videos)
                secret, record = await store.create(args.name, args.tenant, args.role, limits)
            except (ValueError, OverflowError) as error:
                print(f"error: {error}", file=sys.stderr)
                return 2
            if args.json:
                print(json.dumps({"key": secret, "info": record.to_json()}))
            else:
                print(f"created key {record.id} ({record.role}, tenant {record.tenant}):")
                print(secret)
                print("(shown once: it is stored only hashed)", file=sys.stderr)
            return 0
        if args.action == "list":
            found = await store.list()
            if args.json:
                print(json.dumps([k.to_json() for k in found]))
            elif not found:
                print(f"no API keys in {_shown(url)}")
            else:
                print(f"{'id':<10}{'role':<8}{'tenant':<16}{'name':<24}limits")
                for k in found:
                    state = " (revoked)" if k.revoked_at else ""
                    print(
                        f"{k.id:<10}{k.role:<8}{k.tenant:<16}{k.name + state:<24}"
                        f"{_limits_text(k.limits)}"
                    )
            return 0
        record = await store.revoke(args.key_id)
        if record is None:
            print(f"no key {args.key_id}", file=sys.stderr)
            return 1
        print(f"revoked key {record.id} ({record.name})")
        return 0
    finally:
        await client.aclose()


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv.insert(0, "serve")
    parser = argparse.ArgumentParser(
        prog="python -m gateway",
        description=GatewaySettings.__doc__,
        epilog="With no command (or only serve's flags), it serves. "
        "python -m gateway keys --help: how to create, list and revoke API keys.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{serve,keys}")
    run = sub.add_parser("serve", help="serve the REST API (the default)")
    run.add_argument("--host")
    run.add_argument("--port", type=int)
    run.add_argument("--workers", type=int, help="API processes on the port (GATEWAY_WORKERS)")
    run.add_argument("--no-dispatchers", action="store_true", help="serve the API only")
    k = sub.add_parser(
        "keys",
        help="create, list and revoke API keys",
        description="API keys, in the Redis of REDIS_URL, else of the running make run stack "
        "(its stack.json), else redis://127.0.0.1:6379/0.",
    )
    ksub = k.add_subparsers(dest="action", required=True)
    create = ksub.add_parser("create", help="create a key (printed once)")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--tenant",
        help="share this tenant's tasks and collections (default: a tenant of the key's own)",
    )
    create.add_argument("--role", choices=("admin", "client"), default="client")
    create.add_argument("--rps", type=float, default=0, help="requests per second (0: no limit)")
    create.add_argument("--burst", type=int, default=0, help="token bucket size (0: 2 x rps)")
    create.add_argument("--tasks", type=int, default=0, help="tasks in flight at once")
    create.add_argument("--bytes", default="0", help="upload bytes queued at once (e.g. 500M)")
    create.add_argument("--videos", type=int, default=0, help="video tasks in flight at once")
    create.add_argument("--json", action="store_true")
    listing = ksub.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--json", action="store_true")
    revoke = ksub.add_parser("revoke", help="revoke a key on every gateway process at once")
    revoke.add_argument("key_id")
    args = parser.parse_args(argv)
    if args.command == "keys":
        sys.exit(asyncio.run(keys(args)))
    serve(args)


if __name__ == "__main__":
    main()
