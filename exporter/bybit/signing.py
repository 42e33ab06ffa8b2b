"""Bybit V5 request and websocket signatures (sans-I/O).

REST: sign ``timestamp + api_key + recv_window + payload`` where payload is the query
string of a GET or the exact JSON body of a POST. HMAC keys give lowercase hex,
RSA keys give base64 of RSA-SHA256 (PKCS#1 v1.5).
Websocket auth: sign ``"GET/realtime" + expires_ms``.
The simulator verifies signatures with code of its own (and is checked against Bybit's
SDK, pybit), so a mistake here cannot hide behind the same mistake in the fake.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..secrets import Secret, is_pem

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa

DEFAULT_RECV_WINDOW_MS = 5000


def rest_payload(timestamp_ms: int, api_key: str, recv_window_ms: int, payload: str) -> str:
    return f"{timestamp_ms}{api_key}{recv_window_ms}{payload}"


def ws_auth_payload(expires_ms: int) -> str:
    return f"GET/realtime{expires_ms}"


@functools.lru_cache(maxsize=1024)
def _rsa_private_key(pem: str) -> rsa.RSAPrivateKey:
    """Parse a PEM key once (tens of ms each time); a failure raises and is not cached."""
    # Loaded only when an RSA key is used: cryptography costs 8 MB of resident memory.
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa  # (the same reason)

    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the PEM key is not an RSA private key")
    return key


def sign(secret: Secret | str, message: str) -> str:
    """Sign ``message`` with an HMAC secret (hex) or an RSA private key (base64)."""
    raw = secret.reveal() if isinstance(secret, Secret) else secret
    if is_pem(raw):
        # Loaded only when an RSA key is used (see _rsa_private_key).
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding  # (the same reason)

        key = _rsa_private_key(raw)
        signature = key.sign(message.encode(), padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(signature).decode()
    return hmac.new(raw.encode(), message.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SignedHeaders:
    """The four headers of a signed V5 REST request."""

    api_key: str
    timestamp_ms: int
    recv_window_ms: int
    signature: str

    def as_dict(self) -> dict[str, str]:
        return {
            "X-BAPI-API-KEY": self.api_key,
            "X-BAPI-TIMESTAMP": str(self.timestamp_ms),
            "X-BAPI-RECV-WINDOW": str(self.recv_window_ms),
            "X-BAPI-SIGN": self.signature,
            "X-BAPI-SIGN-TYPE": "2",
        }


def sign_rest(
    api_key: str,
    secret: Secret | str,
    timestamp_ms: int,
    payload: str,
    recv_window_ms: int = DEFAULT_RECV_WINDOW_MS,
) -> SignedHeaders:
    message = rest_payload(timestamp_ms, api_key, recv_window_ms, payload)
    return SignedHeaders(api_key, timestamp_ms, recv_window_ms, sign(secret, message))


def ws_auth_args(api_key: str, secret: Secret | str, expires_ms: int) -> list[str | int]:
    """The ``args`` of a websocket ``auth`` op: ``[api_key, expires_ms, signature]``."""
    return [api_key, expires_ms, sign(secret, ws_auth_payload(expires_ms))]
