"""Replica targets: the one reading of a targets setting (GATEWAY_FACE_TARGETS,
GATEWAY_OBJECT_TARGETS), for the channel that calls the replicas and for the
monitor that probes each of them, so both see the same replicas.

A setting is a comma-separated `host:port` list, or one gRPC target:
`dns:///name:port`, `dns://server:port/name:port` (ask that DNS server),
`ipv4:a:p,b:p`, `ipv6:[a]:p,[b]:p` or `unix:path`. Names are resolved by the
standard library's resolver (the system's: /etc/hosts, then DNS), or, for a
target naming its DNS server, by dnspython asking that server; gRPC's own
resolver re-resolves a `dns:` channel by itself.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

SCHEMES = ("dns", "ipv4", "ipv6", "unix")
# The system resolver's answers that mean "no such name (now)", not "resolver broken".
_NO_NAME = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)}


@dataclass(frozen=True)
class Target:
    """A parsed targets setting: its hosts (names or IPs, each with a port), the
    DNS server a `dns://server/` target asks, or a unix socket."""

    spec: str
    hosts: tuple[tuple[str, int], ...]
    dns_server: tuple[str, int] | None = None
    unix: str | None = None

    @property
    def uri(self) -> bool:
        """Whether the setting is a gRPC target URI (passed to the channel as is)."""
        return self.spec.split(":", 1)[0] in SCHEMES


def _host_port(text: str, what: str = "replica address") -> tuple[str, int]:
    host, _, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{what} {text.strip()!r} is not host:port (port 1-65535)")
    return host, int(port)


def _host_list(text: str) -> tuple[tuple[str, int], ...]:
    hosts = tuple(_host_port(part) for part in text.split(",") if part.strip())
    if not hosts:
        raise ValueError("no replica addresses given")
    return hosts


def parse_target(spec: str) -> Target:
    """Read a targets setting (see the module's docstring); ValueError says what
    is wrong with it."""
    spec = spec.strip()
    scheme, _, rest = spec.partition(":")
    if scheme == "unix":
        if not rest.strip():
            raise ValueError(f"target {spec!r} names no socket path")
        return Target(spec, (), unix=spec)
    if scheme == "dns":
        server = None
        if rest.startswith("//"):
            authority, _, rest = rest[2:].partition("/")
            if authority:
                # "server[:port]", "[v6][:port]" or a bare v6 address; port 53 unless given
                if authority.count(":") > 1 and not authority.startswith("["):
                    authority = f"[{authority}]"
                if authority.endswith("]") or ":" not in authority:
                    authority += ":53"
                server = _host_port(authority, "DNS server")
        return Target(spec, (_host_port(rest),), server)
    if scheme in ("ipv4", "ipv6"):
        return Target(spec, _host_list(rest))
    if "://" in spec:
        raise ValueError(f"target {spec!r}: the schemes understood are {', '.join(SCHEMES)}")
    return Target(spec, _host_list(spec))


def address(ip: str, port: int) -> str:
    """`ip:port`, with an IPv6 address in brackets."""
    return f"[{ip}]:{port}" if ipaddress.ip_address(ip).version == 6 else f"{ip}:{port}"


def _ip(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def channel_target(spec: str) -> str:
    """The gRPC target a channel dials for a targets setting: a target URI as
    given; one name as `dns:///name:port` (the channel re-resolves it); a list
    as `ipv4:`/`ipv6:` addresses (its names resolved now, once)."""
    target = parse_target(spec)
    if target.uri:
        return target.spec
    if len(target.hosts) == 1 and _ip(target.hosts[0][0]) is None:
        host, port = target.hosts[0]
        return f"dns:///{host}:{port}"
    ips: list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]] = []
    for host, port in target.hosts:
        ip = _ip(host)
        found = {ip} if ip else _system_lookup(host, port)
        ips += [(ip, port) for ip in sorted(map(ipaddress.ip_address, found))]
    versions = {ip.version for ip, _ in ips}
    if len(versions) > 1:
        raise ValueError(
            "mixing IPv4 and IPv6 replicas in one list is not supported; use a dns:/// target"
        )
    scheme = "ipv6" if versions == {6} else "ipv4"
    return f"{scheme}:" + ",".join(address(str(ip), port) for ip, port in ips)


def _system_lookup(host: str, port: int) -> set[str]:
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return {info[4][0] for info in infos}


async def resolve(target: Target, deadline_s: float = 2.0) -> list[str]:
    """Every address the target names now, as `ip:port` (sorted); a name that
    does not exist (now) has none. OSError or TimeoutError when the resolver
    cannot say."""
    if target.unix:
        return [target.unix]
    found: set[str] = set()
    for host, port in target.hosts:
        ip = _ip(host)
        if ip is not None:
            ips = [ip]
        elif target.dns_server is not None:
            ips = await _ask_server(target.dns_server, host, deadline_s)
        else:
            ips = await _ask_system(host, port, deadline_s)
        found.update(address(ip, port) for ip in ips)
    return sorted(found)


async def _ask_system(host: str, port: int, deadline_s: float) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), deadline_s
        )
    except socket.gaierror as exc:
        if exc.errno in _NO_NAME:
            return []  # the name has no replicas now
        raise
    return [info[4][0] for info in infos]


async def _ask_server(server: tuple[str, int], name: str, deadline_s: float) -> list[str]:
    """A and AAAA records of `name` from one DNS server (a dns://server/name target).
    dnspython is imported here, as only such a target needs it."""
    import dns.asyncresolver
    import dns.exception
    import dns.resolver

    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [server[0]]
    resolver.port = server[1]
    out: list[str] = []
    for rdtype in ("A", "AAAA"):
        try:
            answer = await resolver.resolve(name, rdtype, lifetime=deadline_s, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue  # the name has no replicas (of this family) now
        except dns.exception.Timeout as exc:
            raise TimeoutError(f"DNS server {server[0]}:{server[1]} did not answer") from exc
        except dns.exception.DNSException as exc:
            raise OSError(f"DNS server {server[0]}:{server[1]}: {exc}") from exc
        out += [record.address for record in answer]
    return out
