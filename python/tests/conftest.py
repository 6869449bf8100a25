"""Shared fixtures of the mmring Python tests.

Environment:
  MMRING_PY_STRESS_MESSAGES  messages of the 4 x 4 process test (default 1,000,000)
  MMRING_BIN                 a built `mmring` CLI (default: built with cargo)
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pathlib
import shutil
import subprocess

import pytest

START_METHODS = [m for m in ("fork", "spawn", "forkserver") if m in mp.get_all_start_methods()]
REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(params=START_METHODS)
def ctx(request):
    """A multiprocessing context of each start method."""
    return mp.get_context(request.param)


@pytest.fixture
def shm_path(tmp_path_factory):
    """A fresh path for a named ring under /dev/shm (removed afterwards)."""
    base = pathlib.Path("/dev/shm") if os.path.isdir("/dev/shm") else tmp_path_factory.mktemp("rings")
    p = base / f"mmring-pytest-{os.getpid()}-{os.urandom(4).hex()}"
    yield p
    if p.exists():
        p.unlink()


@pytest.fixture(scope="session")
def mmring_bin():
    """The `mmring` command-line tool: $MMRING_BIN, else built with cargo."""
    env = os.environ.get("MMRING_BIN")
    if env:
        return env
    cargo = shutil.which("cargo")
    assert cargo, "cargo is needed to build the mmring CLI (or set MMRING_BIN)"
    subprocess.run([cargo, "build", "-q", "--bin", "mmring"], cwd=REPO, check=True)
    meta = subprocess.run(
        [cargo, "metadata", "--format-version", "1", "--no-deps"],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout
    import json

    target = json.loads(meta)["target_directory"]
    return str(pathlib.Path(target) / "debug" / "mmring")
