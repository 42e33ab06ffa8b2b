"""Bybit V5 signatures as the simulator checks them, written apart from the exporter's signer
so that a mistake in one cannot hide in the other (tests check both against pybit).

REST: ``timestamp + api_key + recv_window + payload`` (payload: the query string of a GET, the
raw body of a POST). Websocket auth: ``"GET/realtime" + expires_ms``. HMAC-SHA256 signatures
are lowercase hex; RSA-SHA256 (PKCS#1 v1.5) signatures are base64.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

DEFAULT_RECV_WINDOW_MS = 5000


def rest_string_to_sign(timestamp_ms: int, api_key: str, recv_window_ms: int, payload: str) -> str:
    return f"{timestamp_ms}{api_key}{recv_window_ms}{payload}"


def ws_auth_string(expires_ms: int) -> str:
    return f"GET/realtime{expires_ms}"


def hmac_hex(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def verify_hmac_hex(secret: str, message: str, signature: str) -> bool:
    """Constant-time: the comparison must not tell a guesser how much of it was right."""
    try:
        return hmac.compare_digest(hmac_hex(secret, message), signature.lower())
    except TypeError:  # compare_digest refuses non-ASCII text, which is no hex signature anyway
        return False


def verify_rsa_base64(public_key_pem: str, message: str, signature: str) -> bool:
    """False for a bad signature, bad base64 or a key that is not an RSA public key (never raises)."""
    try:
        key = serialization.load_pem_public_key(public_key_pem.encode())
        if not isinstance(key, rsa.RSAPublicKey):
            return False
        key.verify(base64.b64decode(signature), message.encode(), padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def ws_auth_args(api_key: str, secret: str, expires_ms: int) -> list[str | int]:
    """The ``args`` of a websocket ``auth`` op signed with an HMAC secret, for the scenario's bot."""
    return [api_key, expires_ms, hmac_hex(secret, ws_auth_string(expires_ms))]


def new_api_secret() -> str:
    """A fresh HMAC secret for an account created without one."""
    return secrets.token_hex(18)
