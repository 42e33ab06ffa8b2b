"""What ``--version`` prints: the exporter's version, Python's, and the git revision when known.

The revision is read from the checkout the package runs from (no ``git`` binary needed);
an installed wheel has none and says so.
"""

from __future__ import annotations

import platform
from pathlib import Path

from . import __version__

SOURCE_ROOT = Path(__file__).resolve().parent.parent


def git_revision(root: Path = SOURCE_ROOT) -> str | None:
    """The commit ``HEAD`` points at in ``root/.git``, or None outside a checkout."""
    git = root / ".git"
    try:
        if git.is_file():  # a linked worktree: ".git" names the real directory
            git = root / git.read_text().removeprefix("gitdir:").strip()
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head or None
        ref = head[5:]
        loose = git / ref
        if loose.is_file():
            return loose.read_text().strip()
        for line in (git / "packed-refs").read_text().splitlines():
            sha, _, name = line.partition(" ")
            if name == ref:
                return sha
    except OSError:
        return None
    return None


def version_text(prog: str) -> str:
    revision = git_revision()
    return (
        f"{prog} {__version__} (python {platform.python_version()}, "
        f"revision {revision[:12] if revision else 'unknown'})"
    )
