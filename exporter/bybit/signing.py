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


class RestSigner:
    """One key's REST signing, prepared once: the headers of a signed request, as a fresh dict.

    What :func:`sign_rest` and :meth:`SignedHeaders.as_dict` give, byte for byte, for a client
    that signs every poll: the HMAC key is keyed once (``hmac.new`` per call re-derives its
    inner and outer pads; a copy of the keyed object does not), the secret is looked at once
    (HMAC or PEM), and the headers that never change are built once. An RSA key signs as
    :func:`sign` does (the parsed key is cached there).
    """

    __slots__ = ("_api_key", "_hmac", "_recv_window", "_secret")

    def __init__(self, api_key: str, secret: Secret | str, recv_window_ms: int = DEFAULT_RECV_WINDOW_MS) -> None:
        raw = secret.reveal() if isinstance(secret, Secret) else secret
        self._api_key = api_key
        self._recv_window = str(recv_window_ms)
        self._secret = secret
        # None for an RSA key: it signs through sign() each time.
        self._hmac = None if is_pem(raw) else hmac.new(raw.encode(), digestmod=hashlib.sha256)

    def signature(self, message: str) -> str:
        keyed = self._hmac
        if keyed is None:
            return sign(self._secret, message)
        mac = keyed.copy()
        mac.update(message.encode())
        return mac.hexdigest()

    def headers(self, timestamp_ms: int, payload: str, into: dict[str, str]) -> dict[str, str]:
        """``into`` with the five signed headers added, in the order of :meth:`SignedHeaders.as_dict`."""
        ts, api_key, recv_window = str(timestamp_ms), self._api_key, self._recv_window
        into["X-BAPI-API-KEY"] = api_key
        into["X-BAPI-TIMESTAMP"] = ts
        into["X-BAPI-RECV-WINDOW"] = recv_window
        into["X-BAPI-SIGN"] = self.signature(f"{ts}{api_key}{recv_window}{payload}")
        into["X-BAPI-SIGN-TYPE"] = "2"
        return into


def ws_auth_args(api_key: str, secret: Secret | str, expires_ms: int) -> list[str | int]:
    """The ``args`` of a websocket ``auth`` op: ``[api_key, expires_ms, signature]``."""
    return [api_key, expires_ms, sign(secret, ws_auth_payload(expires_ms))]
