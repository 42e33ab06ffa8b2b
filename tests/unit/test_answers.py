"""What a REST answer means, classified without a socket: status, headers and body in."""

from __future__ import annotations

import json

import pytest

from exporter.bybit.answers import RATE_LIMIT_FALLBACK_SECONDS, classify
from exporter.bybit.pacing import IP_BAN_SECONDS

NOW = 1_700_000_000.0


def body(code: int = 0, msg: str = "OK", result: object = None, **extra: object) -> bytes:
    return json.dumps({"retCode": code, "retMsg": msg, "result": result or {}, **extra}).encode()


def test_a_success_carries_its_body_envelope_and_skew():
    answer = classify(200, {}, body(result={"x": 1}, time=int((NOW + 2.0) * 1000)), NOW - 0.5, NOW + 0.5)
    assert answer.ok and answer.code is None and answer.code_label is None
    assert answer.data["result"] == {"x": 1} and answer.envelope is not None and answer.envelope.code == 0
    assert answer.skew == pytest.approx(2.0)  # against the midpoint of the request
    assert answer.invalid == () and answer.ban_until is None


def test_rate_limit_headers_are_readings_and_bad_ones_are_invalid_values():
    headers = {
        "X-Bapi-Limit-Status": "7",
        "X-Bapi-Limit": "10",
        "X-Bapi-Limit-Reset-Timestamp": str(int(NOW * 1000) + 400),
    }
    answer = classify(200, headers, body(), NOW, NOW)
    assert (answer.remaining, answer.limit) == (7, 10) and answer.reset_at == pytest.approx(NOW + 0.4)
    bad = classify(200, {"X-Bapi-Limit-Status": "lots", "X-Bapi-Limit-Reset-Timestamp": "soon"}, body(), NOW, NOW)
    assert bad.ok and bad.remaining is None and bad.reset_at is None
    assert bad.invalid == ("X-Bapi-Limit-Status", "X-Bapi-Limit-Reset-Timestamp")


def test_an_unusable_time_is_an_invalid_value_not_a_skew():
    answer = classify(200, {}, body(time="Infinity"), NOW, NOW)
    assert answer.ok and answer.skew is None and answer.invalid == ("time",)


def test_403_bans_the_host_for_ten_minutes_whatever_the_reset_header_says():
    answer = classify(403, {"X-Bapi-Limit-Reset-Timestamp": str(int(NOW * 1000) + 1000)}, b"Forbidden", NOW, NOW)
    assert answer.code == "403" and answer.ban_until == NOW + IP_BAN_SECONDS == answer.reset_at
    assert answer.hint is not None


@pytest.mark.parametrize("status", [301, 302, 307])
def test_a_redirect_is_refused(status):
    answer = classify(status, {"Location": "https://elsewhere"}, b"", NOW, NOW)
    assert answer.code == "redirect" and answer.ban_until is None


def test_other_statuses_fail_with_the_status_and_bybits_message_if_any():
    assert classify(502, {}, b"<html>bad gateway</html>", NOW, NOW).message == "HTTP 502"
    answer = classify(500, {}, body(10016, "busy"), NOW, NOW)
    assert (answer.code, answer.message, answer.code_label) == ("500", "busy", "500")


def test_a_200_that_is_not_bybits_json_is_invalid():
    for raw in (b"", b"<html>", b"[1, 2]", "caf\xe9".encode("latin-1")):
        answer = classify(200, {}, raw, NOW, NOW)
        assert answer.code == "invalid" and not answer.ok


def test_retcode_10006_waits_for_the_reset_or_one_second():
    reset = str(int(NOW * 1000) + 2500)
    assert classify(200, {"X-Bapi-Limit-Reset-Timestamp": reset}, body(10006), NOW, NOW).reset_at == pytest.approx(
        NOW + 2.5
    )
    fallback = classify(200, {}, body(10006, "Too many visits!"), NOW, NOW)
    assert fallback.code == "10006" and fallback.reset_at == NOW + RATE_LIMIT_FALLBACK_SECONDS
    other = classify(200, {}, body(10003, "API key is invalid."), NOW, NOW)
    assert other.code == "10003" and other.message == "API key is invalid." and other.reset_at is None
    assert classify(200, {}, body(123456), NOW, NOW).code_label == "other"
