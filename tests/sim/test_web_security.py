"""--web.config.file: the exporter-toolkit format, TLS, client certificates, basic auth, headers, reload, gzip."""

from __future__ import annotations

import base64
import gzip
import logging
import ssl
from pathlib import Path

import aiohttp
import pytest
import yaml
from helpers import eventually, parse_metrics
from tls_material import bcrypt_hash, make_pki
from web_server import serving

from exporter import cli
from exporter.web.config import WebConfigError, WebConfigSource, parse_web_config

PASSWORD = "correct horse battery staple"


@pytest.fixture
def pki(tmp_path):
    return make_pki(tmp_path)


def write(path: Path, doc: dict) -> str:
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def tls_config(pki, **extra) -> dict:
    return {"cert_file": pki.server_cert.name, "key_file": pki.server_key.name, **extra}  # relative to the file


def client_ssl(pki, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if cert is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def basic(user: str, password: str) -> str:
    """An ``Authorization`` header value for basic auth."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def get(url: str, *, ssl_context=None, auth=None, headers=None) -> tuple[int, dict, bytes]:
    """One request; no compression unless ``headers`` ask for it (aiohttp asks for gzip by default)."""
    headers = {"Accept-Encoding": "identity", **(headers or {}), **({"Authorization": auth} if auth else {})}
    async with (
        aiohttp.ClientSession(auto_decompress=False) as http,
        http.get(url, ssl=ssl_context if ssl_context is not None else False, headers=headers) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.read()


async def test_basic_auth_over_tls_every_path_needs_the_password(tmp_path, pki):
    path = write(
        tmp_path / "web.yml",
        {
            "tls_server_config": tls_config(pki),
            "http_server_config": {"headers": {"X-Frame-Options": "deny", "Strict-Transport-Security": "max-age=60"}},
            "basic_auth_users": {"prometheus": bcrypt_hash(PASSWORD)},
        },
    )
    async with serving(WebConfigSource(path)) as srv:
        ctx = client_ssl(pki)
        good = basic("prometheus", PASSWORD)
        for p in ("/metrics", "/healthz", "/readyz", "/"):
            status, headers, _ = await get(srv.url(p, "https"), ssl_context=ctx)
            assert status == 401 and headers["WWW-Authenticate"].startswith("Basic realm=")
            assert headers["X-Frame-Options"] == "deny"  # the configured headers go on refusals too
            status, _, _ = await get(srv.url(p, "https"), ssl_context=ctx, auth=good)
            assert status == 200, p
        for wrong in (basic("prometheus", "wrong"), basic("nobody", PASSWORD)):
            assert (await get(srv.url("/metrics", "https"), ssl_context=ctx, auth=wrong))[0] == 401
        status, headers, body = await get(srv.url("/metrics", "https"), ssl_context=ctx, auth=good)
        assert headers["Strict-Transport-Security"] == "max-age=60"
        assert "bybit_dcp_exporter_build_info" in body.decode()
        with pytest.raises(aiohttp.ClientError):  # plain HTTP on the TLS port
            await get(srv.url("/metrics", "http"), auth=good)


async def test_a_client_certificate_is_required_when_configured(tmp_path, pki):
    path = write(
        tmp_path / "web.yml",
        {
            "tls_server_config": tls_config(
                pki, client_auth_type="RequireAndVerifyClientCert", client_ca_file=pki.ca.name
            )
        },
    )
    async with serving(WebConfigSource(path)) as srv:
        with pytest.raises(aiohttp.ClientError):
            await get(srv.url("/healthz", "https"), ssl_context=client_ssl(pki))
        with pytest.raises(aiohttp.ClientError):
            await get(srv.url("/healthz", "https"), ssl_context=client_ssl(pki, pki.stranger_cert, pki.stranger_key))
        ok = client_ssl(pki, pki.client_cert, pki.client_key)
        assert (await get(srv.url("/healthz", "https"), ssl_context=ok))[0] == 200


async def test_client_allowed_sans_refuse_a_valid_certificate_with_another_name(tmp_path, pki):
    tls = tls_config(pki, client_auth_type="RequireAndVerifyClientCert", client_ca_file=pki.ca.name)
    path = write(tmp_path / "web.yml", {"tls_server_config": {**tls, "client_allowed_sans": ["grafana"]}})
    async with serving(WebConfigSource(path)) as srv:
        with pytest.raises(aiohttp.ClientError):
            await get(srv.url("/healthz", "https"), ssl_context=client_ssl(pki, pki.client_cert, pki.client_key))
    path = write(tmp_path / "web.yml", {"tls_server_config": {**tls, "client_allowed_sans": ["prometheus"]}})
    async with serving(WebConfigSource(path)) as srv:
        ctx = client_ssl(pki, pki.client_cert, pki.client_key)
        assert (await get(srv.url("/healthz", "https"), ssl_context=ctx))[0] == 200


async def test_a_changed_file_applies_without_restart_and_a_bad_edit_keeps_the_last_good_one(tmp_path, caplog):
    web_yml = tmp_path / "web.yml"
    write(web_yml, {"basic_auth_users": {"prometheus": bcrypt_hash("old")}})
    async with serving(WebConfigSource(str(web_yml))) as srv:
        assert (await get(srv.url(), auth=basic("prometheus", "old")))[0] == 200
        write(web_yml, {"basic_auth_users": {"prometheus": bcrypt_hash("new")}})

        async def new_password_works():
            return (await get(srv.url(), auth=basic("prometheus", "new")))[0] == 200

        await eventually(new_password_works, timeout=10, interval=0.2, what="the new password to be accepted")
        assert (await get(srv.url(), auth=basic("prometheus", "old")))[0] == 401

        web_yml.write_text("basic_auth_users: {prometheus: not-a-hash}\n")

        async def bad_edit_reported_and_new_password_still_works():
            status = (await get(srv.url(), auth=basic("prometheus", "new")))[0]
            assert status == 200, "the last good web config must stay in force"
            return any("not reloaded" in r.getMessage() for r in caplog.records)

        with caplog.at_level(logging.ERROR, logger="exporter.web.config"):
            await eventually(
                bad_edit_reported_and_new_password_still_works,
                timeout=10,
                interval=0.2,
                what="the bad edit to be reported",
            )


async def test_metrics_are_gzipped_when_asked():
    async with serving() as srv:
        status, headers, body = await get(srv.url(), headers={"Accept-Encoding": "gzip"})
        assert status == 200 and headers["Content-Encoding"] == "gzip"
        assert ("bybit_dcp_exporter_shard_info", frozenset({"shard_index": "0", "shard_count": "1"}.items())) in (
            parse_metrics(gzip.decompress(body).decode())
        )
        status, headers, body = await get(srv.url())
        assert "Content-Encoding" not in headers and body.startswith(b"# HELP")


@pytest.mark.parametrize(
    ("doc", "named"),
    [
        ({"tls_server_config": {"cert_file": "x.pem"}}, "needs both cert_file and key_file"),
        ({"tls_server_confg": {}}, "tls_server_confg: unknown field"),
        ({"http_server_config": {"headers": {"Set-Cookie": "a"}}}, "headers.Set-Cookie: cannot be set"),
        ({"basic_auth_users": {"alice": "plain-password"}}, "basic_auth_users.alice: must be a bcrypt hash"),
        (
            {"tls_server_config": {"cert_file": "c", "key_file": "k", "client_auth_type": "RequireAnyClientCert"}},
            "RequireAnyClientCert",
        ),
        ({"tls_server_config": {"cert_file": "c", "key_file": "k", "min_version": "SSL3"}}, "min_version: 'SSL3'"),
        (
            {"tls_server_config": {"cert_file": "c", "key_file": "k", "cipher_suites": ["TLS_NULL"]}},
            "cipher_suites: TLS_NULL",
        ),
    ],
)
def test_a_bad_web_config_names_the_field(tmp_path, doc, named):
    with pytest.raises(WebConfigError) as info:
        parse_web_config(write(tmp_path / "web.yml", doc))
    assert named in str(info.value)
    assert "plain-password" not in str(info.value)  # a pasted password is never echoed


def test_a_bad_web_config_stops_the_start_with_status_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BYBIT_API_KEY", "KEY123456")
    monkeypatch.setenv("BYBIT_API_SECRET", "secret-value-123")
    path = write(tmp_path / "web.yml", {"basic_auth_users": {"alice": "hunter2"}})
    assert cli.main(["--web.config.file", path]) == 2
    err = capsys.readouterr().err
    assert "basic_auth_users.alice" in err and "hunter2" not in err


def test_tls_versions_and_cipher_suites_reach_the_context(tmp_path, pki):
    path = write(
        tmp_path / "web.yml",
        {
            "tls_server_config": tls_config(
                pki,
                min_version="TLS12",
                max_version="TLS12",
                cipher_suites=["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"],
            )
        },
    )
    context = parse_web_config(path).ssl_context
    assert context is not None
    assert context.minimum_version == context.maximum_version == ssl.TLSVersion.TLSv1_2
    assert [c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"] == ["ECDHE-ECDSA-AES128-GCM-SHA256"]


def test_a_certificate_that_is_a_fifo_is_refused_at_once(tmp_path, pki):
    """OpenSSL would wait on a FIFO for ever; the web config names the field instead."""
    import os

    fifo = tmp_path / "fifo.pem"
    os.mkfifo(fifo)
    path = write(tmp_path / "web.yml", {"tls_server_config": {"cert_file": fifo.name, "key_file": pki.server_key.name}})
    with pytest.raises(WebConfigError) as exc:
        parse_web_config(path)
    assert "tls_server_config.cert_file" in str(exc.value) and "FIFO" in str(exc.value)


def test_a_web_config_with_a_duplicate_key_is_refused_naming_it(tmp_path):
    path = tmp_path / "web.yml"
    path.write_text("basic_auth_users:\n  prometheus: x\nbasic_auth_users:\n  other: y\n")
    with pytest.raises(WebConfigError) as exc:
        parse_web_config(str(path))
    assert "duplicate key 'basic_auth_users' at line 3 (first at line 1)" in str(exc.value)


def test_a_web_config_that_is_a_fifo_is_refused_at_once(tmp_path):
    import os

    fifo = tmp_path / "web.yml"
    os.mkfifo(fifo)
    with pytest.raises(WebConfigError) as exc:
        parse_web_config(str(fifo))
    assert "FIFO" in str(exc.value)
