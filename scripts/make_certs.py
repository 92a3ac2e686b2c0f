"""Make the secrets the deployments mount: for the gRPC hop between the gateway
and the replicas a CA, a server certificate (for the replicas' service names),
a client certificate (for the gateway: mutual TLS) and a shared token; for the
face gallery's PostgreSQL a password and the URL the face replicas connect with.

    python scripts/make_certs.py [DIR]      (make certs; DIR: deploy/k8s/secrets)

docker-compose.yml and deploy/k8s/kustomization.yaml read them from
deploy/k8s/secrets/ (git-ignored). Certificates last a year; run it again to
rotate them. For production, issue them from your own CA (cert-manager...)
with the same file names.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT / "deploy" / "k8s" / "secrets"
SERVER_NAMES = ("face", "object", "localhost", "*.percept.svc", "*.percept.svc.cluster.local")


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def certificate(subject, issuer_key, issuer_name, key, *, ca=False, sans=(), usage=None, days=365):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def pem(obj) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _san(name: str):
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def write_pki(directory: Path, server_names=SERVER_NAMES, extra_ips=("127.0.0.1",)) -> Path:
    """ca.pem, server.pem/.key, client.pem/.key, grpc-token, gallery-db-password
    and gallery-url in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate("percept gRPC CA", ca_key, _name("percept gRPC CA"), ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = certificate(
        "percept replica", ca_key, ca.subject, server_key,
        sans=[_san(n) for n in (*server_names, *extra_ips)],
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
    )  # fmt: skip
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = certificate(
        "percept gateway", ca_key, ca.subject, client_key, sans=[x509.DNSName("gateway")],
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )  # fmt: skip
    files = {
        "ca.pem": pem(ca),
        "server.pem": pem(server),
        "server.key": pem(server_key),
        "client.pem": pem(client),
        "client.key": pem(client_key),
        "grpc-token": secrets.token_urlsafe(32).encode() + b"\n",
    }
    password = secrets.token_urlsafe(24)
    files["gallery-db-password"] = password.encode() + b"\n"
    files["gallery-url"] = f"postgresql://percept:{password}@postgres:5432/percept\n".encode()
    for name, data in files.items():
        path = directory / name
        path.write_bytes(data)
        # Readable by the containers' non-root user (bind-mounted as they are);
        # the directory itself is the owner's only.
        path.chmod(0o644)
    return directory


if __name__ == "__main__":
    out = write_pki(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR)
    print(f"wrote the gRPC CA, certificates and token, and the gallery's database secrets to {out}")
