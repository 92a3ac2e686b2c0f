"""TLS, mutual TLS and the shared token between the gateway and a real face
replica; certificates made by the test with `cryptography`."""

from __future__ import annotations

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from grpc_health.v1 import health_pb2, health_pb2_grpc
from percept.common.v1 import image_pb2
from percept.face.v1 import face_service_pb2 as pb
from percept.face.v1 import face_service_pb2_grpc

from scripts.make_certs import certificate, pem, write_pki
from tests.support import GatewayProcess, ServerProcess, free_port, fresh_db, health_status, submit

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """What `make certs` writes (CA, server and client certificates, token), and
    a stranger's certificate from another CA."""
    d = write_pki(tmp_path_factory.mktemp("pki"))
    key = ec.generate_private_key(ec.SECP256R1())
    stranger = certificate("stranger", key, x509.Name([]), key, ca=True)
    (d / "stranger.pem").write_bytes(pem(stranger))
    (d / "stranger.key").write_bytes(pem(key))
    return d


@pytest.fixture(scope="module")
def tls_face(pki):
    health_port = free_port()
    server = ServerProcess(
        "face_service",
        env={
            "FACE_WORKERS": "1",
            "FACE_TLS_CERT": str(pki / "server.pem"),
            "FACE_TLS_KEY": str(pki / "server.key"),
            "FACE_TLS_CLIENT_CA": str(pki / "ca.pem"),
            "FACE_AUTH_TOKEN_FILE": str(pki / "grpc-token"),
            "FACE_HEALTH_PORT": str(health_port),
        },
    )
    server.health_port = health_port
    # health is checked over TLS with a client certificate (tests/support uses plaintext)
    server.ready = lambda: _health(server.address, pki) == health_pb2.HealthCheckResponse.SERVING
    server.start()
    yield server
    server.stop()


def _credentials(pki, cert: str | None = "client", ca: str = "ca.pem"):
    return grpc.ssl_channel_credentials(
        root_certificates=(pki / ca).read_bytes(),
        private_key=(pki / f"{cert}.key").read_bytes() if cert else None,
        certificate_chain=(pki / f"{cert}.pem").read_bytes() if cert else None,
    )


def _health(address: str, pki) -> int | None:
    try:
        with grpc.secure_channel(address, _credentials(pki)) as channel:
            return (
                health_pb2_grpc.HealthStub(channel)
                .Check(health_pb2.HealthCheckRequest(), timeout=2)
                .status
            )
    except grpc.RpcError:
        return None


def _detect(channel, content: bytes, token: str | None):
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    return face_service_pb2_grpc.FaceServiceStub(channel).DetectFaces(
        pb.DetectFacesRequest(image=image_pb2.Image(content=content)),
        timeout=30,
        metadata=metadata,
    )


def test_mutual_tls_and_the_token_are_required(tls_face, pki, zidane_bytes):
    token = (pki / "grpc-token").read_text().strip()
    with grpc.secure_channel(tls_face.address, _credentials(pki)) as channel:
        assert len(_detect(channel, zidane_bytes, token).faces) == 1  # cert + token: served
        with pytest.raises(grpc.RpcError) as no_token:
            _detect(channel, zidane_bytes, token=None)
        assert no_token.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "token" in no_token.value.details()
        with pytest.raises(grpc.RpcError) as wrong:
            _detect(channel, zidane_bytes, token="guess")
        assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # a plaintext client is refused
    with grpc.insecure_channel(tls_face.address) as channel, pytest.raises(grpc.RpcError) as plain:
        _detect(channel, zidane_bytes, token)
    assert plain.value.code() == grpc.StatusCode.UNAVAILABLE
    # TLS without a client certificate is refused (mutual TLS)
    with (
        grpc.secure_channel(tls_face.address, _credentials(pki, cert=None)) as channel,
        pytest.raises(grpc.RpcError) as anonymous,
    ):
        _detect(channel, zidane_bytes, token)
    assert anonymous.value.code() == grpc.StatusCode.UNAVAILABLE
    # a client certificate from another CA is refused
    with (
        grpc.secure_channel(tls_face.address, _credentials(pki, cert="stranger")) as channel,
        pytest.raises(grpc.RpcError) as stranger,
    ):
        _detect(channel, zidane_bytes, token)
    assert stranger.value.code() == grpc.StatusCode.UNAVAILABLE
    # probes that cannot speak TLS ask the plaintext health-only port
    health = f"127.0.0.1:{tls_face.health_port}"
    assert health_status(health) == health_pb2.HealthCheckResponse.SERVING
    with grpc.insecure_channel(health) as channel, pytest.raises(grpc.RpcError) as only:
        _detect(channel, zidane_bytes, token)
    assert only.value.code() == grpc.StatusCode.UNIMPLEMENTED  # health, nothing else


def test_the_gateway_talks_mutual_tls_with_the_token(
    tls_face, pki, redis_url, object_server, zidane_bytes
):
    url = fresh_db(redis_url, 14)
    common = {
        "REDIS_URL": url,
        "GATEWAY_FACE_TARGETS": tls_face.address,
        "GATEWAY_OBJECT_TARGETS": object_server.address,
        "GATEWAY_GRPC_TLS_CA": str(pki / "ca.pem"),
        "GATEWAY_GRPC_TLS_CERT": str(pki / "client.pem"),
        "GATEWAY_GRPC_TLS_KEY": str(pki / "client.key"),
    }
    good = GatewayProcess(
        "gateway", env={**common, "GATEWAY_GRPC_TOKEN_FILE": str(pki / "grpc-token")}
    ).start()
    try:
        with good.client(timeout=60) as http:
            done = submit(http, "/api/detect/face/image", zidane_bytes, wait="true")
            assert done.status_code == 200 and len(done.json()["result"]["faces"]) == 1
    finally:
        good.stop()
    tokenless = GatewayProcess("gateway", env=common).start()
    try:
        with tokenless.client(timeout=60) as http:
            refused = submit(http, "/api/detect/face/image", zidane_bytes, wait="true")
            assert refused.status_code == 502  # the gateway's credentials, not the caller's
            assert refused.json()["error"]["code"] == "backend_auth"
    finally:
        tokenless.stop()
