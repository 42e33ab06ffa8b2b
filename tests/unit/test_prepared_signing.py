"""The REST client's prepared signer gives the headers sign_rest gives, byte for byte, call after call."""

from exporter.bybit import signing
from exporter.secrets import Secret


def test_prepared_hmac_signer_gives_sign_rest_headers_in_the_same_order_each_call():
    signer = signing.RestSigner("KEY", Secret("SECRET"), 5000)
    for ts, payload in ((1675852742375, '{"timeWindow":40}'), (1675852742376, ""), (1675852742377, "a=b&c=d")):
        expected = signing.sign_rest("KEY", Secret("SECRET"), ts, payload, 5000).as_dict()
        got = signer.headers(ts, payload, {"Accept-Encoding": "gzip"})
        assert list(got.items()) == [("Accept-Encoding", "gzip"), *expected.items()]


def test_prepared_signer_signs_an_rsa_key_as_sign_does(rsa_pem_pair):
    pem, _ = rsa_pem_pair()
    signer = signing.RestSigner("KEY", Secret(pem), 5000)
    # PKCS#1 v1.5 is deterministic: the same message, the same signature.
    assert signer.headers(1, "a=b", {})["X-BAPI-SIGN"] == signing.sign_rest("KEY", Secret(pem), 1, "a=b").signature
