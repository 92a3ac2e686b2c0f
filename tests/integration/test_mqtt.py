"""MQTT out: a real mosquitto on loopback receives every event with QoS 1."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import paho.mqtt.client as paho
import pytest

from tests.support import free_port, fresh_db
from tests.webhooks_support import DeliveryProcess, publish_many

MOSQUITTO = "/usr/sbin/mosquitto"  # Debian's mosquitto (scripts/ensure_tools.py installs it)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    port = free_port()
    conf = tmp_path_factory.mktemp("mosquitto") / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        probe = paho.Client(paho.CallbackAPIVersion.VERSION2)
        try:
            probe.connect("127.0.0.1", port)
            probe.disconnect()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError(f"mosquitto did not start: {proc.stderr.read().decode()}")
    yield port
    proc.terminate()
    proc.wait(10)


class Listener:
    """A subscriber on the broker that records (topic, qos, retained, payload)."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: list[tuple[str, int, bool, dict]] = []
        self.subscribed = threading.Event()
        self.changed = threading.Condition()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(30)

    def _on_message(self, _client, _userdata, msg) -> None:
        with self.changed:
            self.messages.append((msg.topic, msg.qos, bool(msg.retain), json.loads(msg.payload)))
            self.changed.notify_all()

    def wait_for(self, count: int, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.changed.wait(left)
        return True

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_every_event_reaches_the_broker_with_qos_1(broker, redis_url):
    url = fresh_db(redis_url, 15)
    listener = Listener(broker, "percept/#")
    delivery = DeliveryProcess(
        "gateway.webhooks_delivery",
        env={"REDIS_URL": url, "GATEWAY_MQTT_URL": f"mqtt://127.0.0.1:{broker}"},
    ).start(60)
    try:
        acme = publish_many(url, "acme", [
            ("zone.entered", {"source_id": "cam1", "n": i}) for i in range(50)
        ] + [("source.state_changed", {"source_id": "cam1", "state": "live"})])  # fmt: skip
        globex = publish_many(url, "globex", [("line.crossed", {"source_id": "g", "n": 1})])
        assert listener.wait_for(53), len(listener.messages)  # 52 events + 1 retained state
        by_topic: dict[str, list[dict]] = {}
        for topic, qos, _retained, body in listener.messages:
            assert qos == 1
            by_topic.setdefault(topic, []).append(body)
        assert {b["id"] for b in by_topic["percept/acme/zone.entered"]} == set(acme[:50])
        assert [b["id"] for b in by_topic["percept/globex/line.crossed"]] == globex
        assert [b["data"]["state"] for b in by_topic["percept/acme/sources/cam1/state"]] == ["live"]
        # a client connecting later gets each source's state, retained
        late = Listener(broker, "percept/acme/sources/+/state")
        try:
            assert late.wait_for(1, 30)
            topic, qos, retained, body = late.messages[0]
            assert retained and body["id"] == acme[-1] and body["data"]["state"] == "live"
        finally:
            late.close()
    finally:
        delivery.stop()
        listener.close()
