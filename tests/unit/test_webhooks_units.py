"""Webhook cores without a network: the target check, signing, backoff, filters.

Nothing here connects anywhere: private and link-local addresses are judged,
never contacted."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from gateway import events, webhooks
from gateway.webhooks import Subscription, TargetRefused, address_refusal, check_url
from gateway.webhooks_delivery import backoff, retry_after


@pytest.mark.parametrize(
    ("address", "what"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.10", "private"),
        ("fd00::1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("::ffff:10.0.0.1", "private"),  # IPv4-mapped
        ("::ffff:127.0.0.1", "loopback"),
    ],
)
def test_private_loopback_and_link_local_are_refused_unless_allowed(address, what):
    why = address_refusal(address, allow_private=False)
    assert why is not None and what in why and "GATEWAY_WEBHOOK_ALLOW_PRIVATE" in why
    assert address_refusal(address, allow_private=True) is None


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "224.0.0.1", "ff02::1"])
def test_non_host_addresses_are_refused_even_when_private_is_allowed(address):
    assert "not a host address" in address_refusal(address, allow_private=True)


@pytest.mark.parametrize("address", ["100.64.0.1", "192.0.2.1", "198.18.0.1", "240.0.0.1"])
def test_shared_and_reserved_ranges_are_refused(address):
    assert address_refusal(address, allow_private=False) is not None


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    assert address_refusal(address, allow_private=False) is None


def test_a_name_is_judged_by_every_address_it_resolves_to():
    with pytest.raises(TargetRefused, match="localhost resolves to .* loopback"):
        asyncio.run(webhooks.resolve("localhost", 80, allow_private=False))
    assert asyncio.run(webhooks.resolve("127.0.0.1", 80, allow_private=True)) == "127.0.0.1"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/x", "https:// or http://"),
        ("file:///etc/passwd", "https:// or http://"),
        ("https:///path", "no host"),
        ("https://u:p@example.com/", "user or password"),
        ("https://example.com:99999/", "not a URL"),
        ("https://example.com/a\r\nX-Injected: 1", "printable ASCII"),
        ("https://exämple.com/", "printable ASCII"),
    ],
)
def test_bad_urls_say_what_is_accepted(url, message):
    with pytest.raises(TargetRefused, match=message):
        check_url(url)
    assert check_url("https://hooks.example.com/in") == ("https", "hooks.example.com", 443)


def test_signatures_verify_with_the_standard_library_and_rotation_sends_both():
    old, new = webhooks.new_secret(), webhooks.new_secret()
    assert old.startswith("whsec_") and old != new
    body = json.dumps({"id": "evt_1", "type": "zone.entered"}).encode()
    headers = webhooks.sign([new, old], "evt_1", time.time(), body)
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(body, headers)["id"] == "evt_1"
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(body + b" ", headers)
    sub = Subscription("sub_1", "t", "https://x/", ["zone.entered"], secret=new, old_secret=old,
                       old_until=time.time() + 60)  # fmt: skip
    assert sub.signing_secrets(time.time()) == [new, old]
    assert sub.signing_secrets(time.time() + 120) == [new]  # the overlap is over
    assert "secret" not in sub.to_json() and sub.to_json(secret=True)["secret"] == new


def test_filters_by_type_kind_and_source():
    sub = Subscription("s", "t", "https://x/", ["task.succeeded", "zone.entered"],
                       kinds=["face_detection"], source_ids=["cam1"])  # fmt: skip
    task = {"type": "task.succeeded", "data": {"task_id": "1", "kind": "face_detection"}}
    assert sub.wants(task)
    assert not sub.wants({**task, "data": {"task_id": "1", "kind": "object_detection"}})
    assert sub.wants({"type": "zone.entered", "data": {"source_id": "cam1"}})
    assert not sub.wants({"type": "zone.entered", "data": {"source_id": "cam2"}})
    assert not sub.wants({"type": "zone.left", "data": {"source_id": "cam1"}})
    sub.enabled = False
    assert not sub.wants(task)


def test_backoff_grows_with_jitter_and_retry_after_is_read():
    delays = [backoff(a, 1.0, 600.0) for a in range(1, 12)]
    assert 0.5 <= delays[0] <= 1.0 and 256 <= delays[9] <= 512 and delays[10] <= 600
    assert len({backoff(5, 1.0, 600.0) for _ in range(20)}) > 1  # jittered
    assert retry_after("30") == 30.0
    assert 50 < retry_after(time.strftime("%a, %d %b %Y %H:%M:%S GMT",
                                          time.gmtime(time.time() + 60))) <= 61  # fmt: skip
    assert retry_after("soon") is None and retry_after(None) is None


def test_the_event_types_are_declared_once():
    assert events.TASK_EVENT_TYPES == ("task.succeeded", "task.failed", "task.cancelled")
    assert "face.identified" in events.SOURCE_EVENT_TYPES
    assert set(webhooks.DELIVERY_TYPES) == {*events.EVENT_TYPES, webhooks.TEST_EVENT}
