"""Signing is checked against independent computations and Bybit's documented examples' shapes."""

import base64
import hashlib
import hmac

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from exporter.bybit import signing
from exporter.secrets import Secret


def test_rest_hmac_signature_is_hex_of_timestamp_key_window_payload():
    headers = signing.sign_rest("KEY", Secret("SECRET"), 1675852742375, '{"timeWindow":40}', 5000)
    expected = hmac.new(b"SECRET", b'1675852742375KEY5000{"timeWindow":40}', hashlib.sha256).hexdigest()
    assert headers.signature == expected
    assert headers.as_dict() == {
        "X-BAPI-API-KEY": "KEY",
        "X-BAPI-TIMESTAMP": "1675852742375",
        "X-BAPI-RECV-WINDOW": "5000",
        "X-BAPI-SIGN": expected,
        "X-BAPI-SIGN-TYPE": "2",
    }
    assert signing.sign_rest("KEY", Secret("WRONG"), 1675852742375, '{"timeWindow":40}', 5000).signature != expected


def test_ws_auth_args_sign_get_realtime_plus_expiry():
    key, expires, signature = signing.ws_auth_args("KEY", Secret("SECRET"), 1700000000000)
    assert (key, expires) == ("KEY", 1700000000000)
    assert signature == hmac.new(b"SECRET", b"GET/realtime1700000000000", hashlib.sha256).hexdigest()


def test_rsa_signature_is_base64_pkcs1v15_and_verifies(rsa_pem_pair):
    pem, public = rsa_pem_pair()
    headers = signing.sign_rest("KEY", Secret(pem), 1, "a=b", 5000)
    signature = base64.b64decode(headers.signature, validate=True)
    public_key = serialization.load_pem_public_key(public.encode())
    public_key.verify(signature, b"1KEY5000a=b", padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(InvalidSignature):
        public_key.verify(signature, b"1KEY5000a=c", padding.PKCS1v15(), hashes.SHA256())


def test_secret_never_formats_its_value():
    secret = Secret("hunter2")
    rendered = [str(secret), repr(secret), f"{secret}", "%s" % secret, f"{secret!r}", str([secret])]
    assert all("hunter2" not in text for text in rendered)
    assert secret.reveal() == "hunter2"
