"""Library hygiene a transformers user relies on: one version, typed packages, one logging switch, a quiet CLI."""

from __future__ import annotations

import importlib
import logging
import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from test_cli import run_cli, tiny_checkpoint  # noqa: F401  (the fixture, shared)

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bert_core", "tokenization", "conversion", "bert_pipelines", "bert_torch", "bert_tf", "bert_flax", "tribert")


def python(code: str, **env: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (import-time behaviour), with extra environment variables."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})  # fmt: skip


# -- version ---------------------------------------------------------------


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_has_the_distributions_version(package):
    assert importlib.import_module(package).__version__ == version("tribert")


def test_the_version_number_is_written_once():
    """One home (bert_core/_version.py): every other package re-exports it, pyproject reads it."""
    assigned = [p.relative_to(ROOT).as_posix() for package in PACKAGES for p in (ROOT / package).rglob("*.py")
                if re.search(r"^__version__\s*=", p.read_text(), re.M)]  # fmt: skip
    assert assigned == ["bert_core/_version.py"]
    assert 'version = { attr = "bert_core._version.__version__" }' in (ROOT / "pyproject.toml").read_text()
    # `tribert --version` prints the same number: tests/test_cli.py::test_version_is_the_installed_distributions


# -- py.typed ----------------------------------------------------------------


def test_the_wheel_ships_a_py_typed_marker_in_every_package(tmp_path):
    """Build the wheel from a copy of the source tree (no network, no build isolation) and list it."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    build = ("import sys; from setuptools import build_meta as b; "
             "print(b.build_wheel(sys.argv[1]))")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", build, str(tmp_path / "dist")], cwd=source, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    wheel = tmp_path / "dist" / result.stdout.strip().splitlines()[-1]
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"{package}/py.typed" for package in PACKAGES} <= names
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    assert f"\nVersion: {version('tribert')}\n" in zipfile.ZipFile(wheel).read(metadata).decode()


# -- the logging switch ----------------------------------------------------


@pytest.fixture
def restore_verbosity():
    import bert_core.logging as tlog

    before, bars = tlog.get_verbosity(), tlog.is_progress_bar_enabled()
    yield tlog
    tlog.set_verbosity(before)
    (tlog.enable_progress_bar if bars else tlog.disable_progress_bar)()


def test_set_verbosity_reaches_every_package_logger(restore_verbosity):
    import tribert

    tribert.set_verbosity_info()
    assert tribert.get_verbosity() == logging.INFO
    assert {logging.getLogger(f"{p}.some_module").getEffectiveLevel() for p in PACKAGES} == {logging.INFO}
    for setter, level in [(tribert.set_verbosity_error, logging.ERROR), (tribert.set_verbosity_debug, logging.DEBUG),
                          (tribert.set_verbosity_warning, logging.WARNING)]:  # fmt: skip
        setter()
        assert tribert.get_verbosity() == level == logging.getLogger("bert_tf").getEffectiveLevel()
    tribert.set_verbosity("error")
    assert tribert.get_verbosity() == logging.ERROR
    with pytest.raises(ValueError, match="loud"):
        tribert.set_verbosity("loud")


def test_a_loading_report_follows_the_switch(restore_verbosity, tmp_path, caplog):
    """A classifier loaded from a base checkpoint warns (newly initialised weights), unless set to errors only."""
    import bert_torch
    from bert_core import BertConfig
    from harness import tiny_config_dict

    bert_torch.BertModel(BertConfig(**tiny_config_dict())).save_pretrained(tmp_path)
    restore_verbosity.set_verbosity_warning()
    bert_torch.BertForSequenceClassification.from_pretrained(tmp_path)
    assert "classifier.weight" in caplog.text
    caplog.clear()
    restore_verbosity.set_verbosity_error()
    bert_torch.BertForSequenceClassification.from_pretrained(tmp_path)
    assert caplog.text == ""


def test_tribert_verbosity_environment_variable():
    code = "import bert_core.logging as l; print(l.get_verbosity())"
    assert python(code, TRIBERT_VERBOSITY="info").stdout.strip() == str(logging.INFO)
    assert python(code, TRIBERT_VERBOSITY="error").stdout.strip() == str(logging.ERROR)
    bad = python(code, TRIBERT_VERBOSITY="loud")
    assert bad.stdout.strip() == str(logging.WARNING) and "TRIBERT_VERBOSITY='loud'" in bad.stderr


def test_messages_print_once_with_or_without_the_applications_logging_setup():
    emit = "from bert_core.logging import get_logger; get_logger('bert_torch.loading').warning('weights newly initialized')"
    bare = python(emit)
    assert bare.stderr == "[bert_torch.loading] WARNING: weights newly initialized\n"
    configured = python("import logging; logging.basicConfig(format='app: %(message)s'); " + emit)
    assert configured.stderr == "app: weights newly initialized\n"  # through the root handler, not twice


def test_progress_bar_switch_covers_pipelines_and_hub_downloads(restore_verbosity, tmp_path, capsys):
    from huggingface_hub.utils import are_progress_bars_disabled

    from bert_core import BertConfig
    from bert_pipelines import build_pipeline
    from harness import tiny_config_dict
    from tokenization import BertTokenizer

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n")
    pipe = build_pipeline("feature-extraction", tokenizer=BertTokenizer(vocab_file=str(vocab)),
                          config=BertConfig(**tiny_config_dict()),
                          forward=lambda batch: {"last_hidden_state": np.zeros((*batch["input_ids"].shape, 4), np.float32)})  # fmt: skip
    lines = ["hello"] * 300  # over 256 inputs a pipeline shows a bar by default
    restore_verbosity.enable_progress_bar()
    pipe(lines)
    assert "feature-extraction: 100%" in capsys.readouterr().err and not are_progress_bars_disabled()
    restore_verbosity.disable_progress_bar()
    pipe(lines)
    assert capsys.readouterr().err == "" and are_progress_bars_disabled()
    pipe(lines, progress=True)  # an explicit request still shows one
    assert "feature-extraction: 100%" in capsys.readouterr().err


# -- the CLI is quiet by default ---------------------------------------------

NOISE = ("Loading weights", "it/s]", "[transformers]")


def test_parity_is_quiet_by_default_and_loud_with_verbose(tiny_checkpoint):  # noqa: F811
    args = ("parity", str(tiny_checkpoint), "--frameworks", "torch", "--heads", "base")
    quiet = run_cli(*args)
    assert quiet.returncode == 0, quiet.stderr
    assert not [line for line in quiet.stderr.splitlines() if any(n in line for n in NOISE)], quiet.stderr
    assert "torch vs transformers" in quiet.stdout

    loud = run_cli(*args, "-v")
    assert loud.returncode == 0 and loud.stdout == quiet.stdout
    assert all(n in loud.stderr for n in NOISE), loud.stderr  # transformers' bar and advice are back
    assert "[bert_torch] INFO: Loaded" in loud.stderr  # and tribert's own loading report
    assert run_cli("--verbose", *args).stderr.count("[bert_torch] INFO") == loud.stderr.count("[bert_torch] INFO")


def test_quiet_keeps_errors(tmp_path):
    result = run_cli("-q", "parity", str(tmp_path / "missing"), "--frameworks", "torch")
    assert result.returncode == 1
    assert result.stderr.startswith("tribert parity: error: ") and "missing" in result.stderr


def test_a_verbosity_the_user_set_wins_without_flags(tiny_checkpoint, monkeypatch):  # noqa: F811
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "warning")  # the command's subprocess inherits it
    result = run_cli("parity", str(tiny_checkpoint), "--frameworks", "torch", "--heads", "base")
    assert result.returncode == 0 and "[transformers]" in result.stderr  # transformers' advice, as asked
    assert "Loading weights" not in result.stderr  # the bars stay off: nobody asked for them
