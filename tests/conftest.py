"""Shared fixtures. Tests run against the simulator over loopback; nothing reaches Bybit."""

from collections.abc import Callable

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def new_rsa_pem_pair() -> tuple[str, str]:
    """A fresh RSA key pair as (private key PEM, public key PEM), as Bybit's RSA API keys use."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


@pytest.fixture
def rsa_pem_pair() -> Callable[[], tuple[str, str]]:
    """Factory for RSA key pairs: ``private_pem, public_pem = rsa_pem_pair()``."""
    return new_rsa_pem_pair


@pytest.fixture
async def session():
    """One aiohttp client session for a test, closed after it (as the exporter uses one per process)."""
    async with aiohttp.ClientSession() as s:
        yield s
