"""The fine-tuning recipes in examples/: each trains, saves the canonical checkpoint, and the other
frameworks and `transformers` load it with the same logits (the script prints the max |diff|)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness import TOL

ROOT = Path(__file__).resolve().parent.parent
#: recipe -> where its saved checkpoint must load with the same logits.
RECIPES = {"torch": ["tf", "flax", "transformers"], "tf": ["torch", "flax", "transformers"],
           "flax": ["torch", "tf", "transformers"]}


def run_recipe(framework, *args, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / f"finetune_{framework}.py"), "--out",
                           str(tmp_path / "out"), *args], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def check_output(stdout, framework, steps):
    losses = [float(x) for x in re.findall(r"^step \d+/\d+: loss ([\d.]+)$", stdout, re.M)]
    assert len(losses) == steps
    compared = dict(re.findall(r"^  (\w+): max \|diff\| of the logits = (\S+)$", stdout, re.M))
    assert set(RECIPES[framework]) <= set(compared), stdout
    worst = float(re.search(r"^cross-framework max \|diff\|: (\S+)$", stdout, re.M).group(1))
    assert worst == max(float(v) for v in compared.values())
    assert worst <= TOL["float32"]


@pytest.mark.parametrize("framework", list(RECIPES))
def test_tiny_recipe_trains_saves_and_loads_elsewhere_with_the_same_logits(framework, tmp_path):
    stdout = run_recipe(framework, "--tiny", "--steps", "3", tmp_path=tmp_path)
    check_output(stdout, framework, 3)
    assert {"config.json", "model.safetensors", "vocab.txt"} <= {p.name for p in (tmp_path / "out").iterdir()}


@pytest.mark.slow
@pytest.mark.parametrize("framework", list(RECIPES))
def test_real_minilm_recipe(framework, tmp_path, real_model_dir):
    stdout = run_recipe(framework, "--model", str(real_model_dir), "--steps", "2", tmp_path=tmp_path)
    check_output(stdout, framework, 2)
