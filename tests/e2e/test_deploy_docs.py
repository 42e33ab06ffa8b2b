"""The deploy guide (docs/deploy.md) and the runbook name the objects the project ships: the
namespace, labels, StatefulSet and pods of deploy/kubernetes, the unit of deploy/systemd and
the files they mention. A renamed object fails here instead of in an incident.
"""

from __future__ import annotations

import re

import pytest
from helpers import ROOT
from test_kubernetes import by_kind

DEPLOY = (ROOT / "docs" / "deploy.md").read_text()
RUNBOOK = (ROOT / "alerts" / "runbook.md").read_text()
UNIT = "bybit-dcp-exporter"
DOCS = {"deploy": DEPLOY, "runbook": RUNBOOK}


def commands(text: str, tool: str) -> list[str]:
    """Every `tool ...` command in backticks or a shell block, continuation lines joined."""
    text = text.replace("\\\n", " ")
    inline = re.findall(rf"`({tool} [^`]+)`", text)
    blocks = [line.strip() for line in text.splitlines() if re.match(rf"\s*(sudo )?{tool} ", line)]
    return inline + blocks


@pytest.mark.parametrize("doc", DOCS)
def test_kubectl_commands_name_the_shipped_objects(doc):
    found = commands(DOCS[doc], "kubectl")
    assert found, f"no kubectl command in {doc}"
    statefulset = by_kind("example", "StatefulSet")
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    for command in found:
        for namespace in re.findall(r"-n (\S+)", command):
            assert namespace == statefulset["metadata"]["namespace"], command
        for key, value in re.findall(r"-l ([\w./-]+)=([\w.-]+)", command):
            assert pod_labels.get(key) == value, command
        for name in re.findall(r"statefulset/(\S+)", command):
            assert name == statefulset["metadata"]["name"], command
        for pod in re.findall(r" logs (\S+)", command):
            assert re.fullmatch(rf"{statefulset['metadata']['name']}-\d+", pod), command
        for path in re.findall(r"deploy/\S+", command):
            assert (ROOT / path).exists() or "my-desk" in path, command


@pytest.mark.parametrize("doc", DOCS)
def test_systemctl_and_journalctl_name_the_shipped_unit(doc):
    found = commands(DOCS[doc], "systemctl") + commands(DOCS[doc], "journalctl")
    assert found, f"no systemctl command in {doc}"
    assert (ROOT / "deploy" / "systemd" / f"{UNIT}.service").is_file()
    for command in found:
        names = re.findall(r"(?:status|restart|enable --now|edit|-u)\s+(\S+)", command)
        assert names and all(n.removesuffix(".service") == UNIT for n in names), command


def test_the_files_the_deploy_section_names_exist():
    paths = set(re.findall(r"(?<![\w/])((?:deploy|alerts|dashboards|benchmarks)/[\w./-]*\w)", DEPLOY))
    assert len(paths) >= 8
    missing = [p for p in paths if not (ROOT / p).exists() and "my-desk" not in p]
    assert missing == []
