"""The version name: from git, `-dirty` for uncommitted changes, AGENT_VERSION, no git at all."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agent_service.observability.versioning import version_name


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    )
    return result.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "t@example.com")
    git(tmp_path, "config", "user.name", "t")
    (tmp_path / "agent.py").write_text("print('v1')\n")
    git(tmp_path, "add", "agent.py")
    git(tmp_path, "commit", "-qm", "v1")
    return tmp_path


def test_a_clean_checkout_is_named_by_its_commit(repo: Path) -> None:
    sha = git(repo, "rev-parse", "HEAD")[:8]
    assert version_name("support-bot", "", repo) == f"support-bot-git-{sha}"


def test_uncommitted_changes_make_it_dirty(repo: Path) -> None:
    sha = git(repo, "rev-parse", "HEAD")[:8]
    (repo / "agent.py").write_text("print('v2')\n")
    assert version_name("bot", "", repo) == f"bot-git-{sha}-dirty"
    (repo / "notes.txt").write_text("untracked files do not change the code that runs\n")
    git(repo, "checkout", "-q", "agent.py")
    assert version_name("bot", "", repo) == f"bot-git-{sha}"


def test_agent_version_overrides_git(repo: Path) -> None:
    assert version_name("bot", "2026.11.1", repo) == "bot-2026-11-1"


def test_no_repository_falls_back(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert version_name("bot", "", tmp_path) == "bot-unversioned"
    assert "AGENT_VERSION" in caplog.text


def test_no_git_binary_falls_back(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(repo / "no-such-bin"))
    assert version_name("bot", "", repo) == "bot-unversioned"
