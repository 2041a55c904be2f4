"""Every malformed file is refused by name before it can do harm, in every backend and `tribert convert` (issue 15).

Each case writes one bad file next to an otherwise good tiny checkpoint and asserts: each backend's
``from_pretrained`` raises a tribert error (ValueError family) naming the file and the key or field,
and ``tribert convert`` exits non-zero with one line on stderr and writes nothing. The safetensors
cases follow the kinds the `safetensors` library's own tests refuse (tensor.rs: overlapping /
gapped offsets, overflowing shapes, incomplete buffers, bad header lengths, non-UTF-8 or non-JSON
headers), and the library is the reference: it must refuse each of them too.
"""

from __future__ import annotations

import json
import math
import shutil
import struct

import numpy as np
import pytest

from bert_core.config import BertConfig
from bert_core.errors import TriBertError
from conversion.layout import canonical_shapes
from conversion.safetensors_io import save_file
from harness import LEGACY_FIXTURES, tiny_config_dict

LOADERS = ["torch", "tf", "flax", "convert"]


def _tensors(config: dict) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in canonical_shapes(BertConfig(**config)).items()}


def _checkpoint(directory, config=None, weights=True):
    """A tiny base checkpoint: config.json + model.safetensors."""
    config = config if config is not None else tiny_config_dict()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config) if isinstance(config, dict) else config)
    if weights:
        save_file(_tensors(tiny_config_dict()), directory / "model.safetensors")
    return directory


def _load(kind, directory, tmp_path, capsys, **kwargs):
    """Load ``directory`` with ``kind``; return the error message (the test fails if nothing is raised)."""
    if kind == "convert":
        from tribert.cli import main

        out = tmp_path / "converted"
        rc = main(["convert", str(directory), "--to", "safetensors", "--out", str(out), *kwargs.get("argv", [])])
        err = capsys.readouterr().err
        assert rc != 0 and err.count("\n") == 1 and err.startswith("tribert convert: error:"), err
        assert not out.exists() and not list(tmp_path.glob(".converted*")), "convert wrote output for a bad file"
        return err
    module = {"torch": "bert_torch", "tf": "bert_tf", "flax": "bert_flax"}[kind]
    backend = pytest.importorskip(module)
    cls = getattr(backend, {"torch": "", "tf": "TF", "flax": "Flax"}[kind] + kwargs.get("model", "BertModel"))
    with pytest.raises(TriBertError) as info:
        cls.from_pretrained(directory)
    return str(info.value)


# -- safetensors headers ----------------------------------------------------------------------

def _f32(n: int, begin: int) -> dict:
    return {"dtype": "F32", "shape": [n], "data_offsets": [begin, begin + 4 * n]}


#: id -> (raw file bytes, fragments the message must hold). Built by hand: no writer makes these.
def _raw(header, data: bytes = b"", length: int | None = None) -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


SAFETENSORS_CASES = {
    "overlapping offsets": (_raw({"a": _f32(2, 0), "b": _f32(2, 0)}, bytes(8)), ["overlaps tensor"]),
    "shape overflows": (_raw({"a": {"dtype": "F32", "shape": [2**32, 2**32], "data_offsets": [0, 0]}}), ["'a'", "overflows"]),
    "bytes overflow": (_raw({"a": {"dtype": "I32", "shape": [2, 2**63 - 1], "data_offsets": [0, 16]}}, bytes(16)),
                       ["'a'", "overflows"]),
    "metadata a list": (_raw({"__metadata__": [1], "a": _f32(1, 0)}, bytes(4)), ["__metadata__"]),
    "metadata values not str": (_raw({"__metadata__": {"format": 1}, "a": _f32(1, 0)}, bytes(4)), ["__metadata__"]),
    "header a JSON list": (_raw([1, 2]), ["JSON list"]),
    "trailing bytes": (_raw({"a": _f32(1, 0)}, bytes(4) + b"polyglot"), ["trailing bytes"]),
    "gap before a tensor": (_raw({"a": _f32(1, 4)}, bytes(8)), ["belong to no tensor", "'a'"]),
    "float dimension": (_raw({"a": {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}}, bytes(4)), ["'a'", "shape"]),
    "bool dimension": (_raw({"a": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, bytes(4)), ["'a'", "shape"]),
    "repeated key": (_raw(b'{"a":' + json.dumps(_f32(1, 0)).encode() + b',"a":' + json.dumps(_f32(1, 0)).encode() + b"}",
                          bytes(4)), ["repeats the key 'a'"]),
    "NaN in the header": (_raw(b'{"__metadata__":{"a":NaN}}'), ["not JSON"]),
}

#: Cases the reader already refused by name before issue 15; kept so the new checks keep refusing them.
REFUSED_BEFORE = {
    "unknown dtype": (_raw({"a": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}, bytes(4)), ["'a'", "F99"]),
    "negative dimension": (_raw({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, bytes(4)), ["'a'", "shape"]),
    "three offsets": (_raw({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 4]}}, bytes(4)),
                      ["'a'", "data_offsets"]),
    "entry not an object": (_raw({"a": [0, 4]}), ["'a'", "header entry"]),
}


@pytest.mark.parametrize("case", list(REFUSED_BEFORE))
def test_entries_refused_before_stay_refused(case, tmp_path):
    from conversion import SafetensorsFile

    raw, fragments = REFUSED_BEFORE[case]
    (tmp_path / "model.safetensors").write_bytes(raw)
    with pytest.raises(TriBertError) as info:
        SafetensorsFile(tmp_path / "model.safetensors")
    assert all(f in str(info.value) for f in fragments), str(info.value)


@pytest.mark.parametrize("kind", LOADERS)
@pytest.mark.parametrize("case", list(SAFETENSORS_CASES))
def test_malformed_safetensors_refused_by_name(case, kind, tmp_path, capsys):
    raw, fragments = SAFETENSORS_CASES[case]
    directory = _checkpoint(tmp_path / "ckpt", weights=False)
    (directory / "model.safetensors").write_bytes(raw)
    message = _load(kind, directory, tmp_path, capsys)
    assert "model.safetensors" in message and all(f in message for f in fragments), message


@pytest.mark.parametrize("case", [*SAFETENSORS_CASES, *REFUSED_BEFORE])
def test_the_safetensors_library_refuses_each_case_too(case, tmp_path):
    """The reference: each case is one the library itself refuses (or one it reads differently)."""
    from safetensors import SafetensorError, safe_open

    path = tmp_path / "x.safetensors"
    path.write_bytes({**SAFETENSORS_CASES, **REFUSED_BEFORE}[case][0])
    if case == "repeated key":  # the library keeps the last entry; we refuse the ambiguity
        with safe_open(str(path), framework="numpy") as f:
            assert list(f.keys()) == ["a"]
        return
    with pytest.raises(SafetensorError):
        with safe_open(str(path), framework="numpy"):
            pass


# -- sharded indexes ------------------------------------------------------------------------------

def _sharded(tmp_path, shard_name, weight_map=None):
    directory = _checkpoint(tmp_path / "ckpt", weights=False)
    save_file(_tensors(tiny_config_dict()), tmp_path / "outside.safetensors")
    keys = sorted(_tensors(tiny_config_dict()))
    index = {"metadata": {}, "weight_map": weight_map if weight_map is not None else {k: shard_name for k in keys}}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    return directory


@pytest.mark.parametrize("kind", LOADERS)
@pytest.mark.parametrize("case", ["parent", "absolute", "symlink", "weight_map a list", "shard not a string", "missing"])
def test_shard_index_confined_to_its_folder(case, kind, tmp_path, capsys):
    outside = tmp_path / "outside.safetensors"
    shard, weight_map, fragment = {
        "parent": ("../outside.safetensors", None, "'../outside.safetensors'"),
        "absolute": (str(outside), None, "outside.safetensors"),
        "symlink": ("link.safetensors", None, "resolves to"),
        "weight_map a list": (None, ["model-1.safetensors"], "weight_map"),
        "shard not a string": (None, {"embeddings.LayerNorm.weight": 3}, "'embeddings.LayerNorm.weight'"),
        "missing": ("model-00001-of-00002.safetensors", None, "'model-00001-of-00002.safetensors'"),
    }[case]
    directory = _sharded(tmp_path, shard, weight_map)
    if case == "symlink":
        (directory / "link.safetensors").symlink_to(outside)
    message = _load(kind, directory, tmp_path, capsys)
    assert "model.safetensors.index.json" in message and fragment in message, message


# -- legacy weight files: tf_model.h5, flax_model.msgpack ------------------------------------------

LEGACY_LOADERS = ["flax", "convert"]  # torch and tf from_pretrained read only safetensors / .bin
_LN = "bert/embeddings/LayerNorm/gamma:0"


def _h5_checkpoint(tmp_path, edit):
    """The 4.x sequence-classification tf_model.h5 fixture with ``edit(h5py, group, name)`` applied to one weight."""
    h5py = pytest.importorskip("h5py")
    directory = tmp_path / "ckpt"
    directory.mkdir()
    for name in ("config.json", "tf_model.h5"):
        shutil.copy(LEGACY_FIXTURES / "sequence_classification" / name, directory / name)
    with h5py.File(directory / "tf_model.h5", "r+") as f:
        layer = next(n.decode() if isinstance(n, bytes) else n for n in f.attrs["layer_names"] if "bert" in str(n))
        group = f[layer]
        names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
        target = next(n for n in names if n.endswith(edit.weight))
        del group[target]
        edit(h5py, group, target, tmp_path)
    return directory, target


class _Edit:
    def __init__(self, weight, fn, fragment):
        self.weight, self.fn, self.fragment = weight, fn, fragment

    def __call__(self, h5py, group, name, tmp_path):
        self.fn(h5py, group, name, tmp_path)


def _external_file(h5py, group, name, tmp_path):
    (tmp_path / "secret.bin").write_bytes(bytes(128))
    group.create_dataset(name, shape=(32,), dtype="f4", external=[(str(tmp_path / "secret.bin"), 0, 128)])


def _external_link(h5py, group, name, tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as other:
        other.create_dataset("w", data=np.ones(32, np.float32))
    group[name] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/w")


H5_CASES = {
    # 10**7 x 10**6 float32 declared (40 TB), no data written: the file stays a few KB.
    "declared huge dataset": _Edit("word_embeddings/weight:0", lambda h5py, g, n, t: g.create_dataset(
        n, shape=(10**7, 10**6), dtype="f4", chunks=(1, 1024)), "declares shape (10000000, 1000000)"),
    "compound dtype": _Edit("LayerNorm/gamma:0", lambda h5py, g, n, t: g.create_dataset(
        n, shape=(32,), dtype=np.dtype([("a", "f4"), ("b", "f4")])), "dtype"),
    "variable-length strings": _Edit("LayerNorm/gamma:0", lambda h5py, g, n, t: g.create_dataset(
        n, data=np.array(["x"] * 32, dtype=object), dtype=h5py.string_dtype()), "variable-length"),
    "external storage": _Edit("LayerNorm/gamma:0", _external_file, "outside the file"),
    "external link": _Edit("LayerNorm/gamma:0", _external_link, "ExternalLink"),
    "soft link": _Edit("LayerNorm/gamma:0", lambda h5py, g, n, t: g.__setitem__(n, h5py.SoftLink("/elsewhere")),
                       "SoftLink"),
}


@pytest.mark.parametrize("kind", LEGACY_LOADERS)
@pytest.mark.parametrize("case", list(H5_CASES))
def test_malformed_h5_refused_before_reading(case, kind, tmp_path, capsys):
    directory, target = _h5_checkpoint(tmp_path, H5_CASES[case])
    message = _load(kind, directory, tmp_path, capsys, model="BertForSequenceClassification")
    assert "tf_model.h5" in message and target.split("/")[-1] in message and H5_CASES[case].fragment in message, message


def _packed(tree_fn):
    """msgpack bytes of the pretraining flax fixture's tree with ``tree_fn(params)`` applied."""
    msgpack = pytest.importorskip("msgpack")
    tree = msgpack.unpackb((LEGACY_FIXTURES / "sequence_classification" / "flax_model.msgpack").read_bytes(),
                           raw=False, ext_hook=msgpack.ExtType)
    tree_fn(tree)
    return msgpack.packb(tree, use_bin_type=True)


def _array_ext(array: np.ndarray, dtype_name: str | None = None, shape=None):
    msgpack = pytest.importorskip("msgpack")
    body = msgpack.packb((list(array.shape if shape is None else shape), dtype_name or array.dtype.name, array.tobytes()))
    return msgpack.ExtType(1, body)


def _set_layer_norm(value):
    def edit(tree):
        tree["bert"]["embeddings"]["LayerNorm"]["scale"] = value
    return edit


MSGPACK_CASES = {
    "complex array": (lambda: _set_layer_norm(_array_ext(np.ones(32, np.complex64))), "complex64"),
    "native complex extension": (lambda: _set_layer_norm(__import__("msgpack").ExtType(2, b"\x92\x01\x02")),
                                 "extension type 2"),
    "unknown extension": (lambda: _set_layer_norm(__import__("msgpack").ExtType(42, b"x")), "extension type 42"),
    "shape larger than bytes": (lambda: _set_layer_norm(_array_ext(np.ones(32, np.float32), shape=[10**6, 10**6])),
                                "(1000000, 1000000)"),
}


@pytest.mark.parametrize("kind", LEGACY_LOADERS)
@pytest.mark.parametrize("case", list(MSGPACK_CASES))
def test_malformed_msgpack_refused(case, kind, tmp_path, capsys):
    make, fragment = MSGPACK_CASES[case]
    directory = tmp_path / "ckpt"
    directory.mkdir()
    shutil.copy(LEGACY_FIXTURES / "sequence_classification" / "config.json", directory / "config.json")
    (directory / "flax_model.msgpack").write_bytes(_packed(make()))
    message = _load(kind, directory, tmp_path, capsys, model="BertForSequenceClassification")
    assert "flax_model.msgpack" in message and fragment in message, message


# -- config.json ------------------------------------------------------------------------------------

CONFIG_CASES = {
    "NaN layer_norm_eps": ('"layer_norm_eps": NaN', "layer_norm_eps"),
    "infinite layer_norm_eps": ('"layer_norm_eps": Infinity', "layer_norm_eps"),
    "NaN initializer_range": ('"initializer_range": NaN', "initializer_range"),
    "NaN in an extra key": ('"my_scale": NaN', "my_scale"),
    "vocab_size 1e12": ('"vocab_size": 1000000000000', "vocab_size=1000000000000"),
    "num_hidden_layers 1e6": ('"num_hidden_layers": 1000000', "num_hidden_layers=1000000"),
    "num_labels 1e9": ('"num_labels": 1000000000', "num_labels"),
    "bool use_cache as int": ('"use_cache": 1', "use_cache"),
    "float pad_token_id": ('"pad_token_id": 1.5', "pad_token_id"),
    "id2label with text ids": ('"id2label": {"a": "x"}', "id2label"),
}


@pytest.mark.parametrize("kind", LOADERS)
@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_bad_config_refused_before_allocating(case, kind, tmp_path, capsys):
    field, fragment = CONFIG_CASES[case]
    text = json.dumps(tiny_config_dict())[:-1] + ", " + field + "}"
    message = _load(kind, _checkpoint(tmp_path / "ckpt", config=text), tmp_path, capsys)
    assert "config.json" in message and fragment in message, message


def test_parameter_limit_can_be_raised(monkeypatch):
    config = tiny_config_dict(vocab_size=10**6, hidden_size=1024, num_attention_heads=8)  # 2.06B with an untied decoder
    monkeypatch.setenv("TRIBERT_MAX_PARAMS", "2e9")
    with pytest.raises(TriBertError, match="2,060,731,596 parameters.*TRIBERT_MAX_PARAMS"):
        BertConfig(**config)
    monkeypatch.setenv("TRIBERT_MAX_PARAMS", "3e9")
    assert BertConfig(**config).vocab_size == 10**6
    with pytest.raises(TriBertError, match="num_hidden_layers=2000.*TRIBERT_MAX_LAYERS"):
        BertConfig(**tiny_config_dict(num_hidden_layers=2000))
    monkeypatch.setenv("TRIBERT_MAX_LAYERS", "2000")
    assert BertConfig(**tiny_config_dict(num_hidden_layers=2000)).num_hidden_layers == 2000


def test_config_never_writes_nan(tmp_path):
    config = BertConfig(**tiny_config_dict())
    config.layer_norm_eps = math.nan  # set after validation: saving must still refuse it
    with pytest.raises(TriBertError, match="layer_norm_eps"):
        config.save_pretrained(tmp_path)
    assert not (tmp_path / "config.json").exists()


# -- vocab.txt / tokenizer.json ------------------------------------------------------------------

def _vocab(tokens):
    return "".join(t + "\n" for t in tokens)


_GOOD = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s"]
VOCAB_CASES = {
    "binary (NUL bytes)": (_vocab(_GOOD) + "\x00\x01\x02\n", "binary"),
    "duplicate token": (_vocab(_GOOD + ["hello"]), "'hello'"),
    "no [UNK]": (_vocab([t for t in _GOOD if t != "[UNK]"]), "[UNK]"),
    "no [CLS]": (_vocab([t for t in _GOOD if t != "[CLS]"]), "[CLS]"),
}


@pytest.mark.parametrize("fast", [False, True], ids=["slow", "fast"])
@pytest.mark.parametrize("case", list(VOCAB_CASES))
def test_malformed_vocab_refused_by_name(case, fast, tmp_path):
    from tokenization import BertTokenizer, BertTokenizerFast

    text, fragment = VOCAB_CASES[case]
    (tmp_path / "vocab.txt").write_text(text, encoding="utf-8")
    with pytest.raises(TriBertError) as info:
        (BertTokenizerFast if fast else BertTokenizer).from_pretrained(tmp_path)
    assert "vocab.txt" in str(info.value) and fragment in str(info.value), str(info.value)


@pytest.mark.parametrize("name", ["vocab.txt", "tokenizer.json"])
def test_oversized_tokenizer_files_refused_before_reading(name, tmp_path, monkeypatch):
    from tokenization import BertTokenizer, BertTokenizerFast

    (tmp_path / "vocab.txt").write_text(_vocab(_GOOD), encoding="utf-8")
    if name == "tokenizer.json":
        BertTokenizerFast.from_pretrained(tmp_path).save_pretrained(tmp_path)  # writes tokenizer.json
        (tmp_path / "vocab.txt").unlink()
    monkeypatch.setenv("TRIBERT_MAX_VOCAB_BYTES", "16")
    for cls in (BertTokenizer, BertTokenizerFast) if name == "vocab.txt" else (BertTokenizerFast,):
        with pytest.raises(TriBertError, match=rf"{name}.*TRIBERT_MAX_VOCAB_BYTES"):
            cls.from_pretrained(tmp_path)
