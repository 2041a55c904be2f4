"""The `tribert` command: runs as an installed console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest


def run_cli(*args, stdin=None):
    exe = shutil.which("tribert", path=str(__import__("pathlib").Path(sys.executable).parent))
    assert exe, "the tribert console script is not installed (pip install -e .)"
    return subprocess.run([exe, *args], input=stdin, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_env_reports_three_frameworks():
    result = run_cli("env", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    frameworks = report["frameworks"]
    import jax
    import tensorflow as tf
    import torch

    assert frameworks["torch"]["version"] == torch.__version__
    assert frameworks["tensorflow"]["version"] == tf.__version__
    assert frameworks["jax"]["version"] == jax.__version__
    assert "cpu" in frameworks["torch"]["devices"]


def test_unknown_subcommand_fails_cleanly():
    result = run_cli("frobnicate")
    assert result.returncode != 0 and "invalid choice" in result.stderr
