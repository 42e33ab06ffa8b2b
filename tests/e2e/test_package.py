"""The package: `python -m build` gives a wheel and an sdist; the wheel alone, in a fresh venv, runs."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest
from helpers import ROOT, exporter_env, free_port, stop_process, wait_for_url

pytestmark = pytest.mark.timeout(600)


def fresh_env() -> dict[str, str]:
    """No PYTHONPATH: the fresh venv must see only what the wheel installed."""
    return {k: v for k, v in exporter_env().items() if k != "PYTHONPATH"}


def run(*command: str, **kw) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=500, env=fresh_env(), **kw)
    assert result.returncode == 0, f"{' '.join(map(str, command))}:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> tuple[Path, str]:
    """The folder `python -m build` wrote to, and everything it printed."""
    out = tmp_path_factory.mktemp("dist")
    result = run(sys.executable, "-m", "build", "--outdir", str(out), str(ROOT))
    return out, result.stdout + result.stderr


@pytest.fixture(scope="module")
def dist(build) -> Path:
    return build[0]


def test_build_prints_no_deprecation_warning(build):
    """pyproject.toml in today's form (an SPDX license expression, license-files): setuptools warns
    about nothing it will stop accepting, so a newcomer's first build reads clean."""
    output = build[1]
    assert "SetuptoolsDeprecationWarning" not in output
    assert not [line for line in output.splitlines() if "deprecat" in line.lower()], output[-4000:]


def test_build_gives_a_wheel_and_an_sdist_with_the_license(dist):
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
    assert "exporter/cli.py" in names and "exporter/simulator/server.py" in names
    assert not any(n.startswith("tests/") for n in names)
    assert any(n.endswith("licenses/LICENSE") or n.endswith("/LICENSE") for n in names)
    with tarfile.open(sdist) as tar:
        assert any(n.endswith("/LICENSE") for n in tar.getnames())
    (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    with zipfile.ZipFile(wheel) as whl:
        fields = whl.read(metadata).decode().splitlines()
    assert "License-Expression: Apache-2.0" in fields and "License-File: LICENSE" in fields


def test_the_wheel_in_a_fresh_venv_runs_the_demo_and_the_simulator(dist, tmp_path):
    (wheel,) = dist.glob("*.whl")
    venv.create(tmp_path / "venv", with_pip=True)
    bin_dir = tmp_path / "venv" / "bin"
    run(str(bin_dir / "pip"), "install", "-q", str(wheel))
    exe = str(bin_dir / "bybit-dcp-exporter")
    version = run(exe, "--version", cwd=tmp_path).stdout
    assert "python 3." in version and "revision unknown" in version  # no checkout around a wheel
    assert "--listen" in run(exe, "simulate", "--help", cwd=tmp_path).stdout
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--demo", "--web.listen-address", f"127.0.0.1:{port}"],
        cwd=tmp_path,
        env=fresh_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wanted = 'bybit_dcp_up{account="demo"} 1.0'
        wait_for_url(f"http://127.0.0.1:{port}/metrics", 30, lambda body: wanted in body, process=proc)
    finally:
        assert stop_process(proc) == 0
