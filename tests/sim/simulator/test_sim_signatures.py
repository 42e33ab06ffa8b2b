"""The simulator's own signature checks against pybit, Bybit's SDK, which signs the messages."""

from pybit._http_manager import generate_signature

from exporter.simulator import signatures

SECRET = "test-secret"


def test_rest_hmac_signed_by_pybit_verifies_and_a_changed_message_does_not():
    message = signatures.rest_string_to_sign(1_700_000_000_000, "key", 5000, "category=linear")
    assert message == "1700000000000key5000category=linear"
    signature = generate_signature(False, SECRET, message)
    assert signatures.verify_hmac_hex(SECRET, message, signature)
    assert signatures.verify_hmac_hex(SECRET, message, signature.upper())  # hex is case-blind
    assert not signatures.verify_hmac_hex(SECRET, message + "&limit=1", signature)
    assert not signatures.verify_hmac_hex("other", message, signature)
    assert not signatures.verify_hmac_hex(SECRET, message, "é" * 64)  # never raises


def test_websocket_auth_is_signed_as_pybit_signs_it():
    expires = 1_700_000_010_000
    assert signatures.ws_auth_string(expires) == f"GET/realtime{expires}"
    key, sent_expires, signature = signatures.ws_auth_args("key", SECRET, expires)
    assert (key, sent_expires) == ("key", expires)
    assert signature == generate_signature(False, SECRET, f"GET/realtime{expires}")


def test_rsa_signed_by_pybit_verifies_with_the_public_key_only(rsa_pem_pair):
    private_pem, public_pem = rsa_pem_pair()
    message = signatures.ws_auth_string(1_700_000_010_000)
    signature = generate_signature(True, private_pem, message)
    assert signatures.verify_rsa_base64(public_pem, message, signature)
    assert not signatures.verify_rsa_base64(public_pem, message + "0", signature)
    assert not signatures.verify_rsa_base64(rsa_pem_pair()[1], message, signature)
    assert not signatures.verify_rsa_base64(public_pem, message, "not base64!")
    assert not signatures.verify_rsa_base64("not a key", message, signature)
