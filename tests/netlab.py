"""Test hosts on one machine: network namespaces on a bridge, and a tiny DNS
server whose answers the test changes, so a gRPC `dns://` target sees hosts
come and go. Everything lives in namespaces this test creates; traffic goes
only to their addresses and to loopback."""

from __future__ import annotations

import socket
import struct
import subprocess
import threading
from dataclasses import dataclass, field

SUBNET = "10.213.7"
BRIDGE = "pcptbr0"


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@dataclass
class Host:
    name: str
    ip: str

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def unplug(self) -> None:
        sh("ip", "netns", "exec", self.name, "ip", "link", "set", f"{self.name}-e", "down")


@dataclass
class NetLab:
    """A bridge with hosts hanging off it; remove() undoes everything."""

    prefix: str = "pcpt"
    hosts: list[Host] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.remove()
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", f"{SUBNET}.1/24", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")

    def add_host(self, index: int) -> Host:
        name = f"{self.prefix}h{index}"
        host = Host(name, f"{SUBNET}.{10 + index}")
        sh("ip", "netns", "add", name)
        sh("ip", "link", "add", f"{name}-b", "type", "veth", "peer", "name", f"{name}-e")
        sh("ip", "link", "set", f"{name}-e", "netns", name)
        sh("ip", "link", "set", f"{name}-b", "master", BRIDGE, "up")
        sh("ip", "netns", "exec", name, "ip", "addr", "add", f"{host.ip}/24", "dev", f"{name}-e")
        sh("ip", "netns", "exec", name, "ip", "link", "set", f"{name}-e", "up")
        sh("ip", "netns", "exec", name, "ip", "link", "set", "lo", "up")
        self.hosts.append(host)
        return host

    def remove(self) -> None:
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        for line in listed.splitlines():
            name = line.split()[0] if line.strip() else ""
            if name.startswith(f"{self.prefix}h"):
                subprocess.run(["ip", "netns", "del", name], capture_output=True)
                subprocess.run(["ip", "link", "del", f"{name}-b"], capture_output=True)
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)


class TinyDNS:
    """Answers A queries for one name with the current address list (UDP, loopback)."""

    def __init__(self, name: str) -> None:
        self.name = name.rstrip(".").lower()
        self.addresses: list[str] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                packet, peer = self.sock.recvfrom(512)
            except OSError:
                return
            try:
                self.sock.sendto(self._answer(packet), peer)
            except (OSError, IndexError, struct.error):
                continue

    def _answer(self, query: bytes) -> bytes:
        qid, _flags, qdcount = struct.unpack(">HHH", query[:6])
        pos, labels = 12, []
        while query[pos]:
            length = query[pos]
            labels.append(query[pos + 1 : pos + 1 + length].decode().lower())
            pos += 1 + length
        qtype = struct.unpack(">H", query[pos + 1 : pos + 3])[0]
        question = query[12 : pos + 5]
        self.queries += 1
        answers = b""
        count = 0
        if qtype == 1 and ".".join(labels) == self.name:
            for address in self.addresses:
                answers += (
                    b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 1, 4) + socket.inet_aton(address)
                )
                count += 1
        rcode = 0 if ".".join(labels) == self.name else 3
        header = struct.pack(">HHHHHH", qid, 0x8180 | rcode, qdcount, count, 0, 0)
        return header + question + answers

    def close(self) -> None:
        self.sock.close()
