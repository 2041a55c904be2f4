"""`tribert convert --to jax-export|torch-export`: portable artifacts that equal the framework model.

Claim: each artifact, written through `tribert convert` (the atomic path, with its manifest and
card), reloads in a fresh interpreter where tribert, every `bert_*` package, `conversion`,
`tokenization` and flax cannot be imported, by running the card's own loading snippet
(`export.json` "load", the README's code); on two batch sizes and two lengths (the longest
`max_position_embeddings`) its outputs equal the in-process framework model loaded with
`from_pretrained` from the same checkpoint within the float32 bound, padded positions
included. A sequence longer than `max_position_embeddings` is refused with the error the card
names.

Two heads: the bare encoder (two outputs, the pooler) and multiple choice, a classifier whose
inputs carry a third, `choices`, dimension; every other head goes through the same exporter
code (it reads the head's output fields from `bert_core.heads`), and the heads' parity with
each other framework is the parity matrix's claim.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import bert_flax
import bert_torch
from bert_core import BertConfig
from bert_core.unpad import padding_read
from conversion.convert import MANIFEST_NAME
from conversion.export_card import EXPORT_CARD, EXPORT_README, INPUT_NAMES
from harness import assert_close, padded_batch, tiny_config_dict
from tribert.convert import convert

CONFIG = tiny_config_dict(num_labels=3)
MAX = CONFIG["max_position_embeddings"]
HEADS = {"base": "BertModel", "multiple-choice": "BertForMultipleChoice"}
#: (batch, seq) of each call: two batch sizes, two lengths, the longest the position table allows.
SHAPES = [(1, 5), (3, MAX)]
TARGETS = {"jax-export": "bert_flax", "torch-export": "bert_torch"}

# A fresh interpreter where none of tribert's packages nor flax can be imported; it runs each
# artifact's own loading snippet from its directory.
_RELOAD = textwrap.dedent("""
    import importlib.abc, json, os, sys
    import numpy as np

    BLOCKED = ("tribert", "bert_core", "bert_torch", "bert_tf", "bert_flax", "bert_pipelines", "conversion",
               "tokenization", "flax")

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked in this process")

    sys.meta_path.insert(0, Block())
    jobs, inputs = json.loads(sys.argv[1]), np.load(sys.argv[2])
    results = {}
    for job in jobs:
        os.chdir(job["dir"])
        card = json.load(open("export.json"))
        tensor = (lambda a: a) if card["target"] == "jax-export" else __import__("torch").from_numpy
        for case in job["cases"]:
            scope = {name: tensor(inputs[case + "/" + name]) for name in card["inputs"]}
            try:
                exec(card["load"], scope)
            except Exception as exc:
                cause = exc.__cause__ or exc.__context__
                results[case + "/error"] = np.array(f"{type(exc).__name__}: {exc} | {cause}")
                continue
            results.update({f"{case}/{k}": np.asarray(v) for k, v in scope["outputs"].items()})
    results["modules"] = np.array(sorted({m.split(".")[0] for m in sys.modules} & set(BLOCKED)), dtype=str)
    np.savez(sys.argv[3], **results)
""")


def _inputs(head: str, batch: int, seq: int, seed: int) -> dict[str, np.ndarray]:
    if head == "multiple-choice":  # (batch, choices=2, seq)
        flat = padded_batch(CONFIG["vocab_size"], batch=2 * batch, seq=seq, seed=seed, fully_padded_row=False)
        return {k: v.reshape(batch, 2, seq) for k, v in flat.items()}
    return padded_batch(CONFIG["vocab_size"], batch=batch, seq=seq, seed=seed, fully_padded_row=batch > 1)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A tiny random canonical checkpoint per head (saved by bert_torch)."""
    root = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    for head, name in HEADS.items():
        getattr(bert_torch, name)(BertConfig(**CONFIG)).save_pretrained(root / head)
    return root


@pytest.fixture(scope="module")
def reloaded(checkpoints, tmp_path_factory):
    """Every (target, head) artifact written by `tribert convert`, and its outputs in a fresh process."""
    root = tmp_path_factory.mktemp("exports")
    inputs, jobs = {}, []
    for target in TARGETS:
        for head in HEADS:
            out = convert(checkpoints / head, target, root / f"{target}-{head}").out
            cases = []
            for i, (batch, seq) in enumerate([*SHAPES, (2, MAX + 1)]):
                case = f"{target}/{head}/{batch}x{seq}"
                feed = _inputs(head, batch, seq, seed=i)
                dtype = json.loads((out / EXPORT_CARD).read_text())["inputs"]["input_ids"]["dtype"]
                inputs.update({f"{case}/{k}": v.astype(dtype) for k, v in feed.items()})
                cases.append(case)
            jobs.append({"dir": str(out), "cases": cases})
    np.savez(root / "inputs.npz", **inputs)
    done = subprocess.run([sys.executable, "-c", _RELOAD, json.dumps(jobs), str(root / "inputs.npz"),
                           str(root / "outputs.npz")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return root, dict(np.load(root / "inputs.npz")), dict(np.load(root / "outputs.npz"))


def _framework_model(target: str, head: str, directory):
    backend = bert_flax if target == "jax-export" else bert_torch
    name = HEADS[head] if target == "torch-export" else "Flax" + HEADS[head]
    return getattr(backend, name).from_pretrained(directory)


def test_the_fresh_process_imported_nothing_of_tribert_nor_flax(reloaded):
    _, _, outputs = reloaded
    assert list(outputs["modules"]) == []


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("target", TARGETS)
def test_the_reloaded_artifact_equals_the_framework_model(target, head, reloaded, checkpoints):
    root, inputs, outputs = reloaded
    out = root / f"{target}-{head}"
    card = json.loads((out / EXPORT_CARD).read_text())
    assert (out / MANIFEST_NAME).is_file() and (out / EXPORT_README).is_file()
    assert all((out / f).is_file() for f in card["files"])
    assert list(card["inputs"]) == list(INPUT_NAMES) and card["limits"]["seq"] == [1, MAX]
    model = _framework_model(target, head, checkpoints / head)
    fields = model.head.logits
    assert list(card["outputs"]) == list(fields)
    for batch, seq in SHAPES:
        case = f"{target}/{head}/{batch}x{seq}"
        feed = {k: inputs[f"{case}/{k}"] for k in INPUT_NAMES}
        # An exported program traces: it computes masked positions as transformers does (bert_core.unpad).
        with padding_read():
            if target == "torch-export":
                with torch.no_grad():
                    expected = model(**{k: torch.from_numpy(v) for k, v in feed.items()})
            else:
                expected = model(**feed)
        for field in fields:
            diff = assert_close(outputs[f"{case}/{field}"], getattr(expected, field))
            print(f"{case} {field}: max |diff| {diff:.2e}")  # pytest -s shows the figures


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("target", TARGETS)
def test_a_sequence_longer_than_the_position_table_is_refused(target, head, reloaded):
    _, _, outputs = reloaded
    error = str(outputs[f"{target}/{head}/2x{MAX + 1}/error"])
    seq_axis = 2 if head == "multiple-choice" else 1
    expected = (f"ValueError: Error refining shapes" if target == "jax-export"
                else f"AssertionError: Guard failed: input_ids.size()[{seq_axis}] <= {MAX}")
    assert expected in error, error
    if target == "jax-export":
        assert f"Input shapes do not match the symbolic shape constraint seq <= {MAX}" in error, error
