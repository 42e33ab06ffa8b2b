"""The container image: built from the Dockerfile with daemonless tools, inspected, unpacked and run.

No image registry is reachable from CI, so the base image is a Debian root filesystem made
with mmdebstrap from Debian's archive (python3, python3-venv, ca-certificates: what the
slim Python images carry), cached under ~/.cache between runs. buildah builds the Dockerfile
with chroot isolation and the vfs driver (no daemon, no overlay mounts). The image is then
checked from its configuration and its unpacked root filesystem, and run: with podman where
the machine allows containers, else (where the OCI runtime may not set resource limits)
with buildah's chroot runner, which runs the same root filesystem and entrypoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from helpers import ROOT, free_port, wait_for_url

IMAGE = "localhost/bybit-dcp-exporter:ci"
BASE = "localhost/bybit-dcp-exporter-base:bookworm"
BASE_PACKAGES = "python3,python3-venv,ca-certificates"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bybit-dcp-exporter"
STORAGE = ["--storage-driver", "vfs"]
MAX_IMAGE_MB = 300  # about 270: a Debian minbase with python3 (~200) plus the exporter and its wheels

pytestmark = pytest.mark.timeout(900)


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: scripts/test installs it (or says how)")
    return path


def run(*command: str, timeout: float = 600, **kw) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kw)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> str:
    """Build the image (the base root filesystem is cached); its id."""
    buildah, podman, mmdebstrap = tool("buildah"), tool("podman"), tool("mmdebstrap")
    CACHE.mkdir(parents=True, exist_ok=True)
    base_tar = CACHE / f"base-bookworm-{hashlib.sha256(BASE_PACKAGES.encode()).hexdigest()[:12]}.tar"
    if not base_tar.exists():
        partial = base_tar.with_name(base_tar.stem + ".partial.tar")  # mmdebstrap picks the format by suffix
        run(mmdebstrap, "--variant=minbase", f"--include={BASE_PACKAGES}", "bookworm", str(partial))
        partial.rename(base_tar)
    run(podman, *STORAGE, "import", str(base_tar), BASE)
    context = tmp_path_factory.mktemp("context")
    run(sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(context / "dist"), str(ROOT))
    shutil.copy(ROOT / "Dockerfile", context / "Dockerfile")
    shutil.copy(ROOT / ".dockerignore", context / ".dockerignore")
    run(
        buildah, *STORAGE, "bud", "--isolation", "chroot", "--build-arg", f"BASE_IMAGE={BASE}", "-t", IMAGE,
        str(context),
    )  # fmt: skip
    return IMAGE


@pytest.fixture(scope="module")
def rootfs(image, tmp_path_factory) -> Path:
    """The image's root filesystem, unpacked from `podman save` (docker-archive layers)."""
    out = tmp_path_factory.mktemp("image")
    archive = out / "image.tar"
    run(tool("podman"), *STORAGE, "save", "--format", "docker-archive", "-o", str(archive), image)
    root = out / "root"
    root.mkdir()
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))[0]
        for layer in manifest["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(layer)) as inner:
                inner.extractall(root, filter="tar")
    return root


def inspect(image: str) -> dict:
    return json.loads(run(tool("podman"), *STORAGE, "image", "inspect", image).stdout)[0]


def test_the_image_runs_the_exporter_as_a_non_root_user_in_exec_form(image):
    config = inspect(image)["Config"]
    assert config["Entrypoint"] == ["/opt/bybit-dcp-exporter/bin/bybit-dcp-exporter"]
    assert config["User"] == "65532:65532"
    assert "9842/tcp" in config["ExposedPorts"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.title"] == "bybit-dcp-exporter"


def test_the_image_holds_the_wheel_only_no_secrets_and_is_small(image, rootfs):
    site = next((rootfs / "opt/bybit-dcp-exporter/lib").glob("python3*/site-packages"))
    assert (site / "exporter" / "cli.py").is_file()
    assert not (site / "tests").exists() and not any(rootfs.glob("**/.git"))
    leftovers = [p for p in (rootfs / "tmp").rglob("*")] + list((rootfs / "opt").rglob("*.whl"))
    assert leftovers == [], "the build stage's wheels stay in the build stage"
    suspicious = [
        p.relative_to(rootfs)
        for p in (rootfs / "opt").rglob("*")
        if p.is_file() and (p.suffix in (".pem", ".key") or p.name in ("config.yml", ".env"))
    ]
    assert [p for p in suspicious if "certifi" not in str(p) and "pip" not in str(p)] == []
    size_mb = int(inspect(image)["Size"]) / 1e6
    assert size_mb < MAX_IMAGE_MB, f"image is {size_mb:.0f} MB"


def _start(image: str, port: int) -> tuple[subprocess.Popen, str]:
    """The container running --demo on 127.0.0.1:port: podman if it can, else buildah's chroot runner."""
    args = ["--demo", "--web.listen-address", f"127.0.0.1:{port}"]
    probe = subprocess.run(
        [tool("podman"), *STORAGE, "run", "--rm", "--read-only", "--network", "host", image, "--version"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if probe.returncode == 0:
        command = [tool("podman"), *STORAGE, "run", "--rm", "--read-only", "--network", "host", image, *args]
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT), "podman"
    print(f"podman cannot run containers here: {probe.stderr.strip()}; running with buildah's chroot runner")
    container = run(tool("buildah"), *STORAGE, "from", image).stdout.strip()
    entrypoint = inspect(image)["Config"]["Entrypoint"]
    command = [
        tool("buildah"), *STORAGE, "run", "--isolation", "chroot", "--user", "65532:65532", container, "--",
        *entrypoint, *args,
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT), container


def _exporter_pid(ancestor: int) -> int:
    """The entrypoint's process among the descendants of ``ancestor`` (the runner this test started)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    todo = [ancestor]
    while todo:
        pid = todo.pop()
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            # The interpreter running the entrypoint script, not buildah's helpers that name it.
            if b"python" in argv[0] and any(arg.endswith(b"bin/bybit-dcp-exporter") for arg in argv[1:2]):
                return pid
        except OSError:
            pass
        todo.extend(children.get(pid, []))
    raise AssertionError("the exporter's process was not found under the runner")


def test_the_container_serves_metrics_and_stops_on_sigterm(image):
    port = free_port()
    proc, runner = _start(image, port)
    try:
        wanted = 'bybit_dcp_ws_connected{account="demo"}'
        wait_for_url(f"http://127.0.0.1:{port}/metrics", 60, lambda body: wanted in body, process=proc)
        # SIGTERM to the exporter itself, as a container runtime delivers it to PID 1.
        os.kill(_exporter_pid(proc.pid) if runner != "podman" else proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=30)
        assert code == 0, proc.stdout.read().decode()[-2000:] if proc.stdout else code
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        if runner != "podman":
            subprocess.run([tool("buildah"), *STORAGE, "rm", runner], capture_output=True, timeout=60)
