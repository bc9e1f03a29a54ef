"""Shared fixtures: the sample asset, a session library with the sample ingested once, offline mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
SAMPLE = ASSETS / "sample.mp4"


@pytest.fixture(scope="session")
def sample_script() -> dict:
    return json.loads((ASSETS / "sample_script.json").read_text())


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("library")


@pytest.fixture(scope="session")
def sample_record(data_dir):
    from demo.library import Library
    from demo.pipeline import ingest

    return ingest(SAMPLE, library=Library(data_dir))


def run_cli(*args: str, data_dir: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m demo ARGS` as a user would; returns the completed process (text mode)."""
    cmd = [sys.executable, "-m", "demo", *args]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
