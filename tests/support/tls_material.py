"""Test PKI: a CA, a server certificate for 127.0.0.1/localhost and client certificates, written as PEM files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import bcrypt
from cryptography import x509

from exporter.simulator.pki import issue, server_sans, write_cert, write_key


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path  # signed by another CA
    stranger_key: Path


def make_pki(directory: Path) -> Pki:
    ca_key, ca_cert = issue("test CA", [], ca=True)
    server_key, server_cert = issue("localhost", server_sans(), ca_key, ca_cert.subject)
    client_key, client_cert = issue("prometheus", [x509.DNSName("prometheus")], ca_key, ca_cert.subject)
    other_key, other_ca = issue("other CA", [], ca=True)
    stranger_key, stranger_cert = issue("stranger", [x509.DNSName("stranger")], other_key, other_ca.subject)
    return Pki(
        ca=write_cert(ca_cert, directory / "ca.pem"),
        server_cert=write_cert(server_cert, directory / "server.pem"),
        server_key=write_key(server_key, directory / "server-key.pem"),
        client_cert=write_cert(client_cert, directory / "client.pem"),
        client_key=write_key(client_key, directory / "client-key.pem"),
        stranger_cert=write_cert(stranger_cert, directory / "stranger.pem"),
        stranger_key=write_key(stranger_key, directory / "stranger-key.pem"),
    )


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash at the lowest cost: the format is what is tested, not bcrypt's slowness."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
