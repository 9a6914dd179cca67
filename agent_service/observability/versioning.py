"""Which version of the agent is running: `<app name>-git-<sha8>[-dirty]`, or `AGENT_VERSION`.

Read from git once per worker at start-up. A deployment without `.git` (or without the git
binary) sets `AGENT_VERSION`; without either the version is `<app name>-unversioned`, never
a crash.
"""

from __future__ import annotations

import logging
import re
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

# The repository this package is checked out in (when it is one).
SOURCE_DIR = Path(__file__).resolve().parent.parent
_GIT_TIMEOUT_S = 5


# Characters MLflow refuses in a LoggedModel name.
_NOT_IN_NAMES = re.compile(r"""[/:.%"']""")


def version_name(app_name: str, agent_version: str, source_dir: Path = SOURCE_DIR) -> str:
    """The LoggedModel name of the code in `source_dir` (MLflow refuses `. / : % " '` in
    names; they become `-`)."""
    return _NOT_IN_NAMES.sub("-", _version_name(app_name, agent_version, source_dir))


def _version_name(app_name: str, agent_version: str, source_dir: Path) -> str:
    if agent_version:
        return f"{app_name}-{agent_version}"
    sha = _git(source_dir, "rev-parse", "--short=8", "HEAD")
    if sha is None:
        log.warning(
            "No git commit found for %s (set AGENT_VERSION when deploying without .git); "
            "the version is '%s-unversioned'",
            source_dir,
            app_name,
        )
        return f"{app_name}-unversioned"
    # Uncommitted changes to tracked files: this code is not exactly that commit.
    changes = _git(source_dir, "status", "--porcelain", "--untracked-files=no")
    return f"{app_name}-git-{sha}" + ("-dirty" if changes else "")


def _git(source_dir: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            ["git", "-C", str(source_dir), *args],  # noqa: S607 - git from PATH on purpose
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip()
