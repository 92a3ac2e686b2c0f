"""The webhook sender's TLS on loopback: the certificate is verified against the
URL's host name while the connection goes to the checked address."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from gateway.webhooks_http import HttpError, Sender
from scripts.make_certs import write_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return write_pki(tmp_path_factory.mktemp("pki"))  # a CA and a cert for face, localhost, ...


async def _exchange(pki, trust: ssl.SSLContext | None, server_name: str) -> int:
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(pki / "server.pem", pki / "server.key")
    seen: list[bytes] = []

    async def handle(reader, writer) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        seen.append(head + await reader.readexactly(length))
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    sender = Sender(timeout_s=10)
    if trust is not None:
        sender._tls = trust
    try:
        answer = await sender.post("https", "127.0.0.1", port, f"{server_name}:{port}",
                                   server_name, "/in", {"X-A": "1"}, b"{}")  # fmt: skip
        assert seen and seen[0].startswith(b"POST /in HTTP/1.1\r\nHost: ")
        return answer.status
    finally:
        await sender.close()
        server.close()
        await server.wait_closed()


def test_a_certificate_the_system_does_not_trust_is_refused(pki):
    with pytest.raises((HttpError, ssl.SSLError), match="(?i)certificate"):
        asyncio.run(_exchange(pki, None, "localhost"))


def test_the_name_checked_is_the_urls_host_not_the_address(pki):
    trust = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    assert asyncio.run(_exchange(pki, trust, "face")) == 204  # in the certificate
    with pytest.raises((HttpError, ssl.SSLError), match="(?i)hostname|certificate"):
        asyncio.run(_exchange(pki, trust, "evil.example"))  # not in it
