"""TLS, mutual TLS and the shared token between the gateway and a real face
replica; certificates made by the test with `cryptography`."""

from __future__ import annotations

import datetime
import ipaddress

import grpc
import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from percept.common.v1 import image_pb2
from percept.face.v1 import face_service_pb2 as pb
from percept.face.v1 import face_service_pb2_grpc

from tests.integration.test_gateway import submit
from tests.support import GatewayProcess, ServerProcess

pytestmark = pytest.mark.slow

TOKEN = "s3cret-token-for-tests"


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _cert(subject: str, issuer_key, issuer_name, key, *, ca: bool, sans=()) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(obj) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1/localhost, and a client certificate."""
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("percept test CA", ca_key, _name("percept test CA"), ca_key, ca=True)
    files = {"ca.pem": _pem(ca)}
    for who, sans in (
        ("server", [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
        ("client", [x509.DNSName("gateway")]),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        files[f"{who}.pem"] = _pem(_cert(who, ca_key, ca.subject, key, ca=False, sans=sans))
        files[f"{who}.key"] = _pem(key)
    other_key = ec.generate_private_key(ec.SECP256R1())
    stranger = _cert("stranger", other_key, _name("stranger"), other_key, ca=True)
    files["stranger.pem"], files["stranger.key"] = _pem(stranger), _pem(other_key)
    for name, data in files.items():
        (d / name).write_bytes(data)
    return d


@pytest.fixture(scope="module")
def tls_face(pki):
    server = ServerProcess(
        "face_service",
        env={
            "FACE_WORKERS": "1",
            "FACE_TLS_CERT": str(pki / "server.pem"),
            "FACE_TLS_KEY": str(pki / "server.key"),
            "FACE_TLS_CLIENT_CA": str(pki / "ca.pem"),
            "FACE_AUTH_TOKEN": TOKEN,
        },
    )
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


def _detect(channel, content: bytes, token: str | None = TOKEN):
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    return face_service_pb2_grpc.FaceServiceStub(channel).DetectFaces(
        pb.DetectFacesRequest(image=image_pb2.Image(content=content)),
        timeout=30,
        metadata=metadata,
    )


def test_mutual_tls_and_the_token_are_required(tls_face, pki, zidane_bytes):
    with grpc.secure_channel(tls_face.address, _credentials(pki)) as channel:
        assert len(_detect(channel, zidane_bytes).faces) == 1  # cert + token: served
        with pytest.raises(grpc.RpcError) as no_token:
            _detect(channel, zidane_bytes, token=None)
        assert no_token.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "token" in no_token.value.details()
        with pytest.raises(grpc.RpcError) as wrong:
            _detect(channel, zidane_bytes, token="guess")
        assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # a plaintext client is refused
    with grpc.insecure_channel(tls_face.address) as channel, pytest.raises(grpc.RpcError) as plain:
        _detect(channel, zidane_bytes)
    assert plain.value.code() == grpc.StatusCode.UNAVAILABLE
    # TLS without a client certificate is refused (mutual TLS)
    with (
        grpc.secure_channel(tls_face.address, _credentials(pki, cert=None)) as channel,
        pytest.raises(grpc.RpcError) as anonymous,
    ):
        _detect(channel, zidane_bytes)
    assert anonymous.value.code() == grpc.StatusCode.UNAVAILABLE
    # a client certificate from another CA is refused
    with (
        grpc.secure_channel(tls_face.address, _credentials(pki, cert="stranger")) as channel,
        pytest.raises(grpc.RpcError) as stranger,
    ):
        _detect(channel, zidane_bytes)
    assert stranger.value.code() == grpc.StatusCode.UNAVAILABLE


def test_the_gateway_talks_mutual_tls_with_the_token(
    tls_face, pki, redis_url, object_server, zidane_bytes
):
    url = redis_url.rsplit("/", 1)[0] + "/14"
    redis.Redis.from_url(url).flushdb()
    common = {
        "REDIS_URL": url,
        "GATEWAY_FACE_TARGETS": tls_face.address,
        "GATEWAY_OBJECT_TARGETS": object_server.address,
        "GATEWAY_GRPC_TLS_CA": str(pki / "ca.pem"),
        "GATEWAY_GRPC_TLS_CERT": str(pki / "client.pem"),
        "GATEWAY_GRPC_TLS_KEY": str(pki / "client.key"),
    }
    good = GatewayProcess("gateway", env={**common, "GATEWAY_GRPC_TOKEN": TOKEN}).start()
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
