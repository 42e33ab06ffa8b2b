"""A real Prometheus scrapes the exporter over TLS with basic auth and a client certificate.

On 127.0.0.1 only: the simulator (in this process), the exporter with a --web.config.file that
requires TLS, a verified client certificate and a password, and Debian's `prometheus` with
three jobs: the right credentials (up == 1), a wrong password (up == 0, HTTP 401) and plain
HTTP (up == 0).
"""

from __future__ import annotations

import subprocess

import aiohttp
import pytest
import yaml
from exporter_process import ExporterProcesses
from helpers import eventually, free_port, require_binary, stop_process
from tls_material import bcrypt_hash, make_pki

from exporter.simulator import Simulator

PASSWORD = "scrape-password-123"

pytestmark = pytest.mark.timeout(120)


async def test_prometheus_scrapes_over_tls_with_basic_auth_and_a_client_certificate(tmp_path):
    prometheus = require_binary("prometheus")
    pki = make_pki(tmp_path)
    web_config = tmp_path / "web.yml"
    web_config.write_text(
        yaml.safe_dump(
            {
                "tls_server_config": {
                    "cert_file": str(pki.server_cert),
                    "key_file": str(pki.server_key),
                    "client_auth_type": "RequireAndVerifyClientCert",
                    "client_ca_file": str(pki.ca),
                    "min_version": "TLS12",
                },
                "basic_auth_users": {"prometheus": bcrypt_hash(PASSWORD)},
            }
        )
    )
    (tmp_path / "password").write_text(PASSWORD)
    (tmp_path / "wrong").write_text("not-the-password")
    sim = Simulator(time_scale=0.1, settle_delay=0.0)
    await sim.start(host="127.0.0.1", port=0)
    sim.add_account("tls-key-0001", "tls-secret-0001", name="desk")
    exporters = ExporterProcesses(tmp_path)
    prom: subprocess.Popen | None = None
    port, prom_port = free_port(), free_port()
    try:
        exporters.start(
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--web.config.file",
            str(web_config),
            BYBIT_API_KEY="tls-key-0001",
            BYBIT_API_SECRET="tls-secret-0001",
            BYBIT_ACCOUNT="desk",
            BYBIT_REST_URL=sim.rest_url,
            BYBIT_WS_URL=sim.ws_url,
            BYBIT_POLL_INTERVAL="1",
        )
        tls = {"ca_file": str(pki.ca), "cert_file": str(pki.client_cert), "key_file": str(pki.client_key)}
        target = {"static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {
                    "job_name": "secured",
                    "scheme": "https",
                    "tls_config": tls,
                    "basic_auth": {"username": "prometheus", "password_file": str(tmp_path / "password")},
                    **target,
                },
                {
                    "job_name": "wrong-password",
                    "scheme": "https",
                    "tls_config": tls,
                    "basic_auth": {"username": "prometheus", "password_file": str(tmp_path / "wrong")},
                    **target,
                },
                {"job_name": "plain-http", **target},
            ],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        with open(tmp_path / "prometheus.log", "wb") as log:
            prom = subprocess.Popen(
                [
                    prometheus,
                    f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'data'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:

            async def targets() -> dict[str, dict] | None:
                exporters.assert_running()
                assert prom is not None and prom.poll() is None, (tmp_path / "prometheus.log").read_text()[-3000:]
                try:
                    async with http.get(f"http://127.0.0.1:{prom_port}/api/v1/targets") as resp:
                        active = (await resp.json())["data"]["activeTargets"]
                except aiohttp.ClientError:
                    return None
                by_job = {t["labels"]["job"]: t for t in active}
                done = len(by_job) == 3 and all(t["health"] != "unknown" for t in by_job.values())
                return by_job if done and by_job["secured"]["health"] == "up" else None

            by_job = await eventually(targets, timeout=40, interval=0.2, what="the three jobs to be scraped")
            assert by_job["wrong-password"]["health"] == "down"
            assert "401" in by_job["wrong-password"]["lastError"]
            assert by_job["plain-http"]["health"] == "down"

            async def scraped_desk():
                async with http.get(
                    f"http://127.0.0.1:{prom_port}/api/v1/query",
                    params={"query": 'bybit_dcp_up{job="secured",account="desk"}'},
                ) as resp:
                    return (await resp.json())["data"]["result"]

            (series,) = await eventually(scraped_desk, timeout=20, interval=0.2, what="bybit_dcp_up over TLS")
            assert series["value"][1] == "1"
    finally:
        if prom is not None:
            stop_process(prom)
        codes = exporters.stop_all()
        await sim.stop()
    assert codes == [0]
