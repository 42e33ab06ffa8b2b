"""Reading the files an operator points the exporter at: regular files only, of a bounded size,
with a warning when a secret can be read by others, and YAML with bounded aliases and no duplicate keys.

Every file is opened without blocking and judged by what it is, not by its name: a FIFO
would hang the start (and ``--check-config``) until something writes to it, ``/dev/zero``
or a directory is no configuration, and a 70 MB "PEM" is a mistake to refuse, not to read.

Permissions, as ssh judges a private key: a secret file (an API secret, an RSA key, a
liveness token) that others can read gets a warning. Group read is fine when the group is
one of the exporter's own (Kubernetes mounts secrets as ``root:<fsGroup>`` mode 0440). A
symbolic link is judged by its target: Kubernetes mounts every secret through two of them.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

import yaml

SECRET_FILE_LIMIT = 64 * 1024  # bytes: a 4096-bit RSA key in PEM is about 3.3 KB
CONFIG_FILE_LIMIT = 16 * 1024 * 1024  # bytes: 1,000 accounts take well under 1 MB
MAX_EXPANDED_NODES = 500_000  # YAML nodes once every alias is expanded: a billion laughs stops here
MAX_ECHO = 300  # characters of a value a problem repeats


class FileProblem(ValueError):
    """Why a file cannot be used, as a phrase to follow its name ("is a FIFO, not a regular file")."""


_warnings: ContextVar[list[str] | None] = ContextVar("config_file_warnings", default=None)


@contextlib.contextmanager
def collecting_warnings() -> Iterator[list[str]]:
    """Collect the warnings of the file reads in this block (they are made before logging is set up)."""
    collected: list[str] = []
    token = _warnings.set(collected)
    try:
        yield collected
    finally:
        _warnings.reset(token)


def _warn(message: str) -> None:
    collected = _warnings.get()
    if collected is not None:
        collected.append(message)


def read_regular_file(path: str, limit: int) -> str:
    """The UTF-8 text of ``path``; raises :class:`FileProblem` for anything but a regular file of at most ``limit`` bytes.

    ``OSError`` (no such file, permission denied) is left to the caller, which words it.
    """
    text, _ = _read(path, limit)
    return text


def read_secret_file(path: str, field: str, limit: int = SECRET_FILE_LIMIT) -> str:
    """As :func:`read_regular_file`, and a warning naming ``field`` when others can read the secret."""
    text, st = _read(path, limit)
    readable_by = _readable_by_others(st)
    if readable_by:
        _warn(
            f"{field}: the secret file {path!r} can be read by {readable_by} (mode {stat.S_IMODE(st.st_mode):04o}); "
            "make it readable by the exporter only (chmod 0400, or 0440 with the exporter's own group)"
        )
    return text


def _read(path: str, limit: int) -> tuple[str, os.stat_result]:
    # O_NONBLOCK: a FIFO opens at once instead of waiting for a writer; fstat then refuses it.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileProblem(f"is {_kind(st.st_mode)}, not a regular file")
        if st.st_size > limit:
            raise FileProblem(f"is larger than {limit} bytes ({st.st_size})")
        chunks = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:  # grew while read
            raise FileProblem(f"is larger than {limit} bytes")
    finally:
        os.close(fd)
    try:
        return b"".join(chunks).decode("utf-8"), st
    except UnicodeDecodeError:
        raise FileProblem("is not UTF-8 text") from None


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _readable_by_others(st: os.stat_result) -> str | None:
    """'others' or 'its group' when a user other than the exporter's may read the file; None when only it may."""
    if st.st_mode & stat.S_IROTH:
        return "every user"
    if st.st_mode & stat.S_IRGRP and st.st_gid not in {os.getegid(), *os.getgroups()}:
        return f"group {st.st_gid}"
    return None


def excerpt(value: Any, limit: int = MAX_ECHO) -> str:
    """``repr(value)`` cut to ``limit`` characters: a problem points at a value, never repeats a huge one.

    The repr is built piece by piece for a container, so a value that expands to gigabytes is
    never formatted whole."""
    if isinstance(value, (list, tuple, dict, set)):
        text = _bounded_repr(value, limit + 1)
    else:
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _bounded_repr(value: Any, budget: int) -> str:
    """The start of ``repr(value)``, about ``budget`` characters of it, shared references and all never expanded beyond."""
    out: list[str] = []
    used = 0

    def emit(text: str) -> bool:
        nonlocal used
        out.append(text)
        used += len(text)
        return used < budget

    def walk(item: Any) -> bool:
        if isinstance(item, dict):
            if not emit("{"):
                return False
            for i, (k, v) in enumerate(item.items()):
                if (i and not emit(", ")) or not walk(k) or not emit(": ") or not walk(v):
                    return False
            return emit("}")
        if isinstance(item, (list, tuple, set)):
            opening, closing = (
                ("[", "]") if isinstance(item, list) else ("(", ")") if isinstance(item, tuple) else ("{", "}")
            )
            if not emit(opening):
                return False
            for i, v in enumerate(item):
                if (i and not emit(", ")) or not walk(v):
                    return False
            return emit(closing)
        return emit(repr(item[:budget] if isinstance(item, str) else item)[:budget])

    walk(value)
    return "".join(out)


# ---------------------------------------------------------------------- YAML


class YamlProblem(ValueError):
    """A YAML document refused for its shape: a duplicate key or too many nodes once aliases expand."""


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys (it keeps the last silently) and alias bombs."""

    def compose_document(self) -> Any:
        node = super().compose_document()
        _check_expansion(node)
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *defaults`: merged keys may be overridden, as YAML means
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the constructor words that error
                continue
            line = key_node.start_mark.line + 1
            if first is not None:
                raise YamlProblem(f"duplicate key {excerpt(key, 60)} at line {line} (first at line {first})")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def _check_expansion(root: yaml.Node | None) -> None:
    """Count the nodes the document has once every alias is expanded, without expanding them."""
    if root is None:
        return
    weight: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in weight and weight[key] >= 0:
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if not children_done:
            if weight.get(key) == -1:
                raise YamlProblem(f"a recursive alias at line {node.start_mark.line + 1}")
            weight[key] = -1  # in progress
            stack.append((node, True))
            for child in children:
                if weight.get(id(child)) == -1:
                    raise YamlProblem(f"a recursive alias at line {child.start_mark.line + 1}")
                if id(child) not in weight:
                    stack.append((child, False))
            continue
        total = 1 + sum(weight[id(child)] for child in children)
        if total > MAX_EXPANDED_NODES:
            raise YamlProblem(
                f"more than {MAX_EXPANDED_NODES} values once its aliases are expanded "
                f"(from line {node.start_mark.line + 1}); an alias bomb?"
            )
        weight[key] = total


def load_yaml(text: str) -> Any:
    """One YAML document, safely: raises :class:`YamlProblem` or ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_StrictLoader)
