"""Throwaway certificates for a simulator that speaks TLS (``https://``, ``wss://``).

A test CA and a server certificate for the loopback addresses it listens on, valid two days:
enough for tests and benchmarks to connect the way they would to Bybit, trusting the CA
through ``SSL_CERT_FILE`` (or a context of their own). Never for anything but loopback.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class ServerPki:
    ca: Path  # the CA certificate to trust
    cert: Path  # the server's certificate, for 127.0.0.1, localhost and the given addresses
    key: Path


def name(common_name: str) -> x509.Name:

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def issue(
    subject: str,
    sans: list[x509.GeneralName],
    issuer_key: ec.EllipticCurvePrivateKey | None = None,
    issuer_name: x509.Name | None = None,
    *,
    ca: bool = False,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A fresh P-256 key and its certificate; self-signed without an issuer."""

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(issuer_name or name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return key, builder.sign(issuer_key or key, hashes.SHA256())


def write_cert(cert: x509.Certificate, path: Path) -> Path:

    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:

    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


def server_sans(addresses: Iterable[str] = ()) -> list[x509.GeneralName]:
    """``localhost``, 127.0.0.1 and each of ``addresses`` (IP addresses)."""

    ips = dict.fromkeys(["127.0.0.1", *addresses])
    return [x509.DNSName("localhost"), *(x509.IPAddress(ipaddress.ip_address(a)) for a in ips)]


def make_server_pki(directory: Path, addresses: Iterable[str] = ()) -> ServerPki:
    """A CA and a server certificate signed by it, written to ``directory`` as PEM."""
    ca_key, ca_cert = issue("simulator test CA", [], ca=True)
    key, cert = issue("localhost", server_sans(addresses), ca_key, ca_cert.subject)
    return ServerPki(
        ca=write_cert(ca_cert, directory / "ca.pem"),
        cert=write_cert(cert, directory / "server.pem"),
        key=write_key(key, directory / "server-key.pem"),
    )
