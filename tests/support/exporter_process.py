"""Exporter subprocesses for the end-to-end tests: started on 127.0.0.1, logs kept, always stopped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers import exporter_env, stop_process


class ExporterProcesses:
    """Starts ``bybit-dcp-exporter`` processes; ``stop_all()`` ends every one it started."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[tuple[subprocess.Popen, Path]] = []

    def start(self, *args: str, name: str = "exporter", **env: str) -> subprocess.Popen:
        log = self.workdir / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "exporter.cli", *args],
                env=exporter_env(**env),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        self.procs.append((proc, log))
        return proc

    def assert_running(self) -> None:
        for proc, log in self.procs:
            assert proc.poll() is None, f"{log.name} exited with {proc.returncode}:\n{log.read_text()[-3000:]}"

    def stop_all(self) -> list[int]:
        return [stop_process(proc) for proc, _ in self.procs]
