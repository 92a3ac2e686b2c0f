"""What a hostile operator's odd targets settings get (percept_runtime/targets.py):
a setting that cannot name a replica or a DNS server is refused when read, with
the setting in the message, instead of a gateway that starts and never reaches it."""

from __future__ import annotations

import pytest

from percept_runtime.targets import parse_target


@pytest.mark.parametrize("spec", [
    "127.0.0.1:99999",  # no such port
    "127.0.0.1:0",
    "ipv4:127.0.0.1:70000",
    "dns:///face:65536",
    "dns://127.0.0.1:x/face:1",  # a DNS server port that is not a number (was: 53, silently)
    "dns://127.0.0.1:0/face:1",
    "unix:",  # no socket path
])  # fmt: skip
def test_a_target_no_replica_can_have_is_refused(spec):
    with pytest.raises(ValueError):
        parse_target(spec)


def test_a_dns_server_given_as_a_bracketed_ipv6_address_is_that_address():
    # dnspython is handed the address itself; "[::1]" is no nameserver it can ask.
    assert parse_target("dns://[::1]:5353/face:1").dns_server == ("::1", 5353)
    assert parse_target("dns://[::1]/face:1").dns_server == ("::1", 53)
