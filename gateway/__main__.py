"""python -m gateway [serve] [--port N] [--workers W]: the REST API (dispatchers
included unless GATEWAY_DISPATCHERS=false). With several workers, W processes
share the port (the kernel spreads connections), each with its own dispatchers.

python -m gateway keys create|list|revoke: manage API keys (in REDIS_URL).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

import uvicorn

from gateway.settings import GatewaySettings
from percept_runtime.logs import configure_logging

_SIZES = {"k": 1024, "m": 1024**2, "g": 1024**3}


def _bytes(text: str) -> int:
    text = text.strip().lower().removesuffix("ib").removesuffix("b")
    if text and text[-1] in _SIZES:
        return int(float(text[:-1]) * _SIZES[text[-1]])
    return int(text)


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

    settings = GatewaySettings()
    client = aioredis.from_url(settings.redis_url, decode_responses=True)
    store = KeyStore(client)
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
            else:
                print(f"{'id':<10}{'role':<8}{'tenant':<16}{'name':<24}limits")
                for k in found:
                    lim = ", ".join(f"{n}={v:g}" for n, v in vars(k.limits).items() if v) or "none"
                    state = " (revoked)" if k.revoked_at else ""
                    print(f"{k.id:<10}{k.role:<8}{k.tenant:<16}{k.name + state:<24}{lim}")
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
    if not argv or argv[0].startswith("-"):
        argv.insert(0, "serve")
    parser = argparse.ArgumentParser(prog="python -m gateway", description=GatewaySettings.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("serve", help="serve the REST API (the default)")
    run.add_argument("--host")
    run.add_argument("--port", type=int)
    run.add_argument("--workers", type=int, help="API processes on the port (GATEWAY_WORKERS)")
    run.add_argument("--no-dispatchers", action="store_true", help="serve the API only")
    k = sub.add_parser("keys", help="manage API keys")
    ksub = k.add_subparsers(dest="action", required=True)
    create = ksub.add_parser("create", help="create a key (printed once)")
    create.add_argument("--name", required=True)
    create.add_argument("--tenant", default="default")
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
