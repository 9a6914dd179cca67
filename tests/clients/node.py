"""Runs the JavaScript clients (tests/clients/js, installed by `make test` from its lock file)
against a live server: one Node.js process per case, its report parsed from JSON."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

JS_DIR = Path(__file__).parent / "js"
DRIVER = JS_DIR / "drive.mjs"
# Written by `make test` once `npm ci` has installed the locked packages.
INSTALLED = JS_DIR / "node_modules" / ".installed"
# A case is one or two small model calls; a hung client fails the test instead of CI.
CASE_TIMEOUT_S = 60


def require_node() -> str:
    """The `node` executable, or a skip saying how to get the JS clients (a failure in CI,
    where they must run)."""
    node = shutil.which("node")
    problem = None
    if node is None:
        problem = "Node.js 20 is not installed; install it, then run `make test`."
    elif not INSTALLED.exists():
        problem = "the JS clients are not installed; `make test` installs them (npm ci)."
    if problem is None:
        assert node is not None
        return node
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the JavaScript client tests: {problem}")
    pytest.skip(problem)


async def drive(case: dict[str, Any]) -> dict[str, Any]:
    """Run one case (see drive.mjs for its fields) and return the client's report."""
    node = require_node()
    process = await asyncio.create_subprocess_exec(
        node,
        str(DRIVER),
        cwd=JS_DIR,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(
            process.communicate(orjson.dumps(case)), timeout=CASE_TIMEOUT_S
        )
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, f"drive.mjs failed ({process.returncode}):\n{err.decode()}"
    report: dict[str, Any] = orjson.loads(out)
    return report
