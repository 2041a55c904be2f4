"""`tribert convert --overwrite`: the old output or the complete new one, never neither; nothing else replaced.

Each step of the swap is made to fail in-process (both the one-step exchange Linux has
and the two-rename fallback used elsewhere), and a real `kill -9` hits a subprocess at
each step; after the kill, and again after the next run's cleanup, ``--out`` is
byte-identical to a clean conversion, old or new.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import bert_core._io as atomic
from bert_core import CheckpointError
from conversion import convert as core
from tribert.convert import convert
from harness import LEGACY_FIXTURES as FIXTURES

SOURCE = FIXTURES / "pretraining"
OLD, NEW = {}, {"dtype": "float16"}  # two conversions of one source whose files differ


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    """The files of a clean old and a clean new conversion (the manifest names the source; it is the same)."""
    root = tmp_path_factory.mktemp("references")
    return {name: _files(convert(SOURCE, "safetensors", root / name, **options).out)
            for name, options in (("old", OLD), ("new", NEW))}  # fmt: skip


def _state(out: Path, references) -> str:
    if not out.is_dir():
        return "missing"
    files = _files(out)
    return next((name for name, ref in references.items() if files == ref), "neither")


def _siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


@pytest.fixture
def old_out(tmp_path, references):
    out = convert(SOURCE, "safetensors", tmp_path / "out", **OLD).out
    assert _state(out, references) == "old"
    return out


def test_overwrite_refuses_a_directory_that_is_not_a_tribert_output_unless_forced(tmp_path, references):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    with pytest.raises(CheckpointError, match=r"is not a tribert output \(it holds no tribert-manifest.json\).*--force"):
        convert(SOURCE, "safetensors", out, overwrite=True)
    assert (out / "thesis.tex").read_text() == "years of work"
    file = tmp_path / "notes.txt"
    file.write_text("keep")
    with pytest.raises(CheckpointError, match="not a tribert output"):
        convert(SOURCE, "safetensors", file, overwrite=True)
    assert file.read_text() == "keep"
    convert(SOURCE, "safetensors", out, overwrite=True, force=True, **NEW)
    assert _state(out, references) == "new" and not _siblings(out)


@pytest.mark.parametrize("step, exchange", [("writing", True), ("swapping", True), ("writing", False),
                                            ("moving-old-aside", False), ("moving-new-in", False)])
def test_a_failure_at_any_step_keeps_the_old_output(step, exchange, old_out, references, monkeypatch):
    if not exchange:
        monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    real_replace = os.replace

    def fail_writing(tensors, config, head, out, **options):
        (out / "model.safetensors").write_bytes(b"half a file")
        raise OSError("disk full")

    failed = []

    def replace(a, b):  # fails the step's rename once (putting the old output back is a rename too)
        wanted = Path(a) == old_out if step == "moving-old-aside" else Path(b) == old_out and ".tmp-" in Path(a).name
        if wanted and not failed:
            failed.append(a)
            raise OSError("injected")
        return real_replace(a, b)

    def exchange_fails(a, b):
        raise OSError("injected")

    if step == "writing":
        monkeypatch.setitem(core.WRITERS, "safetensors", fail_writing)
    elif exchange:
        monkeypatch.setattr(atomic, "_exchange", exchange_fails)
    else:
        monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="disk full|injected"):
        convert(SOURCE, "safetensors", old_out, overwrite=True, **NEW)
    assert _state(old_out, references) == "old" and not _siblings(old_out)
    monkeypatch.undo()
    convert(SOURCE, "safetensors", old_out, overwrite=True, **NEW)
    assert _state(old_out, references) == "new" and not _siblings(old_out)


KILLER = """
import os, signal, sys
from pathlib import Path
import bert_core._io as atomic
from conversion import convert as core
from tribert.convert import convert

step, out, exchange = sys.argv[1], Path(sys.argv[2]), sys.argv[3] == "1"
die = lambda *_: os.kill(os.getpid(), signal.SIGKILL)
if not exchange:
    atomic._exchange = lambda a, b: False
if step == "writing":
    real = core.WRITERS["safetensors"]
    core.WRITERS["safetensors"] = lambda *args, **kw: (real(*args, **kw), die())
elif step == "between-renames":
    real_replace = os.replace
    os.replace = lambda a, b: (real_replace(a, b), Path(a) == out and die())
elif step == "before-deleting-old":
    atomic._remove = die
convert(sys.argv[4], "safetensors", out, overwrite=True, dtype="float16")
"""


@pytest.mark.parametrize(
    "step, exchange, right_after",
    [("writing", True, "old"), ("before-deleting-old", True, "new"), ("writing", False, "old"),
     ("between-renames", False, "missing"), ("before-deleting-old", False, "new")],
)  # fmt: skip
def test_kill_9_at_any_step_leaves_old_or_new_and_the_next_run_cleans_up(step, exchange, right_after, old_out, references):
    """Only the two-rename fallback (systems without an atomic exchange) has a moment without --out;
    the next run puts the old output back from its moved-aside copy."""
    killed = subprocess.run([sys.executable, "-c", KILLER, step, str(old_out), str(int(exchange)), str(SOURCE)],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    assert _state(old_out, references) == right_after
    assert _siblings(old_out)  # the killed process left its temporaries
    with pytest.raises(CheckpointError, match="already exists"):  # the next run, even one that fails, recovers first
        convert(SOURCE, "safetensors", old_out)
    assert _state(old_out, references) == ("old" if right_after == "missing" else right_after)
    assert not _siblings(old_out)


def test_a_live_writer_temporaries_are_left_alone(tmp_path, old_out):
    """Cleanup removes only what a dead process left: another conversion's work in progress is kept."""
    busy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = old_out.with_name(f".{old_out.name}.tmp-{busy.pid}-abc")
        live.mkdir()
        atomic.recover_directory(old_out)
        assert live.is_dir()
    finally:
        busy.kill()
        busy.wait()
    atomic.recover_directory(old_out)
    assert not live.exists()
