"""Log formats and the secret-masking filter (defence in depth)."""

from __future__ import annotations

import io
import json
import logging

import pytest

from exporter.logs import SecretFilter, setup_logging

SECRET = "very-secret-value-42"
KEY = "APIKEY1234567890"


@pytest.fixture
def capture():
    stream = io.StringIO()
    yield stream
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)


def test_logfmt_fields_and_quoting(capture):
    setup_logging("debug", "logfmt", stream=capture)
    logging.getLogger("exporter.test").info('hello "world"', extra={"account": "desk a", "n": 3})
    line = capture.getvalue().strip()
    assert line.startswith("ts=")
    assert 'level=info logger=exporter.test msg="hello \\"world\\""' in line
    assert 'account="desk a" n=3' in line


def test_json_lines(capture):
    setup_logging("info", "json", stream=capture)
    logging.getLogger("exporter.test").warning("x", extra={"account": "a", "ratio": 0.5})
    logging.getLogger("exporter.test").debug("hidden at info")
    (line,) = capture.getvalue().strip().splitlines()
    doc = json.loads(line)
    assert doc["level"] == "warning" and doc["msg"] == "x" and doc["account"] == "a" and doc["ratio"] == 0.5


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_secrets_masked_everywhere(capture, fmt):
    setup_logging("debug", fmt, secrets=[SECRET], api_keys=[KEY], stream=capture)
    log = logging.getLogger("exporter.test")
    log.debug("secret %s in args", SECRET)
    log.info(f"secret {SECRET} in message, key {KEY}")
    log.warning("extra", extra={"detail": f"x{SECRET}y"})
    try:
        raise ValueError(f"boom {SECRET}")
    except ValueError:
        log.exception("traceback")
    out = capture.getvalue()
    assert SECRET not in out and KEY not in out
    assert out.count("***") >= 5
    assert "API***90" in out  # the key's ends stay, to tell keys apart


def test_filter_masks_pem_lines():
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n-----END PRIVATE KEY-----"
    f = SecretFilter([pem])
    assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" not in f.mask("line: MIIEvQIBADANBgkqhkiG9w0BAQEFAASC")
