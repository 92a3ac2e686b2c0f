"""Webhook benchmarks, printed side by side in one run:

1. deliveries per second from one delivery process (python -m
   gateway.webhooks_delivery) to a receiver on loopback, signed, logged and
   settled in Redis (target >= 500/s);
2. the extra delay from event to delivery (receiver's arrival time minus the
   event's time) at 100 events/s: p50 and p95;
3. face tasks per second through the gateway (?wait=true, one face replica)
   with 3 webhook subscriptions receiving every task.succeeded vs none,
   alternating rounds (target >= 0.97x).

The receiver is tests/webhook_receiver.py (a threaded http.server) in this
process: it shares the machine's cores with the sender.

python -m bench.webhook_bench [--events N] [--images N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

import redis
import redis.asyncio as aioredis

from bench.common import alternate, report, rest_rate
from bench.gateway_bench import FACE_PATH, zidane
from gateway import events
from gateway.webhooks import Subscription, WebhookStore
from harness.processes import GatewayProcess, ServerProcess
from harness.webhook_receiver import Receiver


class DeliveryProcess(GatewayProcess):
    def command(self) -> list[str]:
        return [sys.executable, "-m", "gateway.webhooks_delivery"]

    def ready(self) -> bool:
        return "webhook delivery started" in self.log()


async def subscribe(url: str, tenant: str, target: str, types: list[str]) -> Subscription:
    client = aioredis.from_url(url, decode_responses=True)
    try:
        sub = Subscription("", tenant, target, types)
        return await WebhookStore(client).create(sub)
    finally:
        await client.aclose()


async def publish(url: str, n: int, rate: float | None) -> list[str]:
    """n events for tenant "bench", as fast as possible or at `rate` per second."""
    client = aioredis.from_url(url, decode_responses=True)
    try:
        ids, start = [], time.perf_counter()
        for i in range(n):
            if rate:
                await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            ids.append(
                await events.publish(client, "bench", "zone.entered", {"source_id": "b", "n": i})
            )
        return ids
    finally:
        await client.aclose()


def delivery_process(url: str) -> DeliveryProcess:
    process = DeliveryProcess(
        "gateway.webhooks_delivery",
        env={"REDIS_URL": url, "GATEWAY_WEBHOOK_ALLOW_PRIVATE": "true",
             "GATEWAY_WEBHOOK_PER_SUBSCRIPTION": "32"},
    )  # fmt: skip
    process.log_path = Path(f"/tmp/percept-bench-webhooks-{os.getpid()}.log")
    return process.start(60)


def deliveries(url: str, n: int) -> tuple[float, list[float]]:
    """The backlog of n events, published while no delivery process runs, then
    sent by one: the rate from its first arrival to its last."""
    receiver = Receiver()
    delivery = delivery_process(url)
    try:
        asyncio.run(subscribe(url, "bench", receiver.url, ["zone.entered"]))
        asyncio.run(publish(url, 50, None))  # warm: scripts, the group
        assert receiver.wait_for(lambda r: r.count() >= 50, 60)
        delivery.stop()
        receiver.clear()
        ids = asyncio.run(publish(url, n, None))
        delivery = delivery_process(url)
        assert receiver.wait_for(lambda r: r.count() >= n, 300), "deliveries missing"
        assert set(ids) <= receiver.ids()
        arrivals = sorted(r.at for r in receiver.received)
        rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
        receiver.clear()
        ids = asyncio.run(publish(url, 1000, 100.0))
        assert receiver.wait_for(lambda r: r.count() >= len(ids), 120)
        # the event's time is wall-clock; arrival too (both on this machine)
        offset = time.time() - time.monotonic()
        delays = [
            (r.at + offset - json.loads(r.body)["time"]) * 1000
            for r in receiver.received
            if r.headers.get("webhook-id") in set(ids)
        ]
        return rate, delays
    finally:
        delivery.stop()
        receiver.close()


def tasks_with_subscriptions(url: str, images: int, rounds: int) -> tuple[float, float, int]:
    content = zidane()
    cores = os.cpu_count() or 1
    face = ServerProcess("face_service", env={"FACE_WORKERS": str(cores)}).start()
    receivers = [Receiver() for _ in range(3)]
    gateway = GatewayProcess("gateway", env={
        "REDIS_URL": url, "GATEWAY_FACE_TARGETS": face.address,
        "GATEWAY_OBJECT_TARGETS": face.address, "GATEWAY_WEBHOOK_ALLOW_PRIVATE": "true",
        "GATEWAY_FACE_CONCURRENCY": str(2 * cores), "GATEWAY_LOG_LEVEL": "WARNING",
    }).start()  # fmt: skip
    subs: list[str] = []
    try:
        with gateway.client(timeout=60) as http:

            def hooked() -> float:
                for r in receivers:
                    body = {"url": r.url, "types": ["task.succeeded"]}
                    subs.append(http.post("/api/webhooks", json=body).json()["id"])
                try:
                    return asyncio.run(rest_rate(gateway.url, FACE_PATH, content, images, 2 * cores,
                                                 gateway.headers))  # fmt: skip
                finally:
                    while subs:
                        http.delete(f"/api/webhooks/{subs.pop()}")

            def plain() -> float:
                return asyncio.run(
                    rest_rate(gateway.url, FACE_PATH, content, images, 2 * cores, gateway.headers)
                )

            ours, base = alternate(hooked, plain, rounds)
        return ours, base, sum(len(r.received) for r in receivers)
    finally:
        gateway.stop()
        face.stop()
        for r in receivers:
            r.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--no-tasks", action="store_true", help="skip 3 (it starts a face replica)")
    parser.add_argument("--only-tasks", action="store_true", help="3 alone")
    parser.add_argument("--rounds", type=int, default=3, help="3: alternating rounds (median)")
    args = parser.parse_args()
    base = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0").rsplit("/", 1)[0]
    url = f"{base}/12"
    redis.Redis.from_url(url).flushdb()
    print(f"webhook benchmarks: {os.cpu_count()} cores, receiver on loopback")
    try:
        if not args.only_tasks:
            rate, delays = deliveries(url, args.events)
            verdict = "ok" if rate >= 500 else "BELOW TARGET"
            print(f"1. deliveries from one process, {args.events} events: {rate:.0f}/s "
                  f"(target >= 500/s) {verdict}", flush=True)  # fmt: skip
            q = statistics.quantiles(delays, n=100)
            print(f"2. event -> delivery at 100 events/s ({len(delays)} events): "
                  f"p50 {q[49]:.1f} ms, p95 {q[94]:.1f} ms", flush=True)  # fmt: skip
            redis.Redis.from_url(url).flushdb()
        if args.no_tasks:
            return
        ours, plain, received = tasks_with_subscriptions(url, args.images, args.rounds)
        report("3. face tasks/s, 3 webhook subscriptions vs none", ours, plain, "tasks/s", 0.97)
        print(f"   ({received} task.succeeded deliveries received)")
    finally:
        redis.Redis.from_url(url).flushdb()


if __name__ == "__main__":
    main()
