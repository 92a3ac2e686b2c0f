"""One reading of a targets setting for the channels and the replica monitor
(percept_runtime/targets.py): what each form parses to, the gRPC target a
channel dials, and names resolved by real resolvers on loopback (the system's
for `localhost`; test_replica_monitor.py asks a DNS server of its own)."""

from __future__ import annotations

import asyncio

import pytest

from percept_runtime.targets import channel_target, parse_target, resolve
from tests.netlab import TinyDNS


@pytest.mark.parametrize(("spec", "hosts"), [
    ("10.0.0.1:1", (("10.0.0.1", 1),)),
    (" face:50051 , object:7 ", (("face", 50051), ("object", 7))),
    ("[::1]:5", (("::1", 5),)),
    ("ipv4:10.0.0.1:1,10.0.0.2:2", (("10.0.0.1", 1), ("10.0.0.2", 2))),
    ("ipv6:[::1]:5,[::2]:6", (("::1", 5), ("::2", 6))),
    ("dns:///face:50051", (("face", 50051),)),
    ("dns:face:50051", (("face", 50051),)),
])  # fmt: skip
def test_each_form_names_its_hosts(spec, hosts):
    target = parse_target(spec)
    assert target.hosts == hosts
    assert target.dns_server is None and target.unix is None


def test_a_dns_target_may_name_its_server():
    assert parse_target("dns://127.0.0.1:5353/face:1").dns_server == ("127.0.0.1", 5353)
    assert parse_target("dns://127.0.0.1/face:1").dns_server == ("127.0.0.1", 53)


def test_a_unix_target_is_its_own_address():
    target = parse_target("unix:/run/face.sock")
    assert target.unix == "unix:/run/face.sock" and target.hosts == ()
    assert asyncio.run(resolve(target)) == ["unix:/run/face.sock"]


@pytest.mark.parametrize(("spec", "error"), [
    ("", "no replica addresses"),
    (" , ", "no replica addresses"),
    ("face", "not host:port"),
    ("face:http", "not host:port"),
    ("10.0.0.1:1,face", "not host:port"),
    ("dns:///face", "not host:port"),
    ("ipv4:", "no replica addresses"),
    ("xds:///face:50051", "schemes understood"),
])  # fmt: skip
def test_a_wrong_setting_says_what_is_wrong(spec, error):
    with pytest.raises(ValueError, match=error):
        parse_target(spec)
    with pytest.raises(ValueError, match=error):
        channel_target(spec)


@pytest.mark.parametrize(("spec", "dialled"), [
    ("10.0.0.2:2,10.0.0.1:1", "ipv4:10.0.0.2:2,10.0.0.1:1"),
    ("[::1]:5,[::2]:5", "ipv6:[::1]:5,[::2]:5"),
    ("face:50051", "dns:///face:50051"),
    ("dns:///face:50051", "dns:///face:50051"),
    ("dns://127.0.0.1:5353/face:1", "dns://127.0.0.1:5353/face:1"),
    ("ipv4:10.0.0.1:1,10.0.0.2:2", "ipv4:10.0.0.1:1,10.0.0.2:2"),
    ("unix:/run/face.sock", "unix:/run/face.sock"),
])  # fmt: skip
def test_a_channel_dials_what_the_setting_names(spec, dialled):
    assert channel_target(spec) == dialled


def test_a_list_names_one_address_family():
    with pytest.raises(ValueError, match="mixing IPv4 and IPv6"):
        channel_target("10.0.0.1:1,[::1]:1")


def test_names_in_a_list_are_resolved_by_the_system_resolver():
    dialled = channel_target("127.0.0.1:8,localhost:7")
    assert dialled.startswith("ipv4:127.0.0.1:8,127.0.0.1:7") or dialled == "ipv6:[::1]:7"


def test_the_system_resolver_answers_for_a_name_and_not_for_an_unknown_one():
    addresses = asyncio.run(resolve(parse_target("localhost:50051,127.0.0.2:9")))
    assert "127.0.0.2:9" in addresses
    assert {"127.0.0.1:50051", "[::1]:50051"} & set(addresses)
    # .invalid never resolves (RFC 6761): no replicas now, not an error.
    assert asyncio.run(resolve(parse_target("dns:///nothing.invalid:1"))) == []


def test_a_silent_dns_server_is_a_timeout_not_an_empty_answer():
    dns = TinyDNS("face.percept.test")
    port = dns.port
    dns.close()  # nothing answers on its port now
    target = parse_target(f"dns://127.0.0.1:{port}/face.percept.test:50051")
    with pytest.raises((TimeoutError, OSError)):
        asyncio.run(resolve(target, deadline_s=0.3))
