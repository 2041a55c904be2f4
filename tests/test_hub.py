"""Hub ids resolve through the standard Hugging Face cache, offline, with revisions."""

from __future__ import annotations


import pytest

from bert_core import BertConfig, ConfigError
from bert_core.hub import HubError, resolve_file
from harness import make_hub_cache


def test_config_from_cached_hub_id(tmp_path, real_model_dir):
    make_hub_cache(tmp_path, "sentence-transformers/all-MiniLM-L6-v2", {"config.json": real_model_dir / "config.json"})
    config = BertConfig.from_pretrained("sentence-transformers/all-MiniLM-L6-v2", cache_dir=tmp_path)
    assert config == BertConfig.from_pretrained(real_model_dir)


def test_revision_selects_snapshot(tmp_path, real_model_dir):
    make_hub_cache(tmp_path, "org/bert", {"config.json": real_model_dir / "config.json"}, revision="v1", commit="b" * 40)
    path = resolve_file("org/bert", "config.json", cache_dir=tmp_path, revision="v1", local_files_only=True)
    assert path.parent.name == "b" * 40
    with pytest.raises(HubError, match="config.json of 'org/bert' is not in the local cache"):
        resolve_file("org/bert", "config.json", cache_dir=tmp_path, local_files_only=True)


def test_missing_optional_file_is_none_and_required_names_it(tmp_path, real_model_dir):
    make_hub_cache(tmp_path, "org/bert", {"config.json": real_model_dir / "config.json"})
    assert resolve_file("org/bert", "vocab.txt", cache_dir=tmp_path, required=False) is None
    with pytest.raises(HubError, match="vocab.txt"):
        resolve_file("org/bert", "vocab.txt", cache_dir=tmp_path)


def test_local_directory_and_bad_ids(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert resolve_file(tmp_path, "config.json") == tmp_path / "config.json"
    with pytest.raises(HubError, match="vocab.txt not found in directory"):
        resolve_file(tmp_path, "vocab.txt")
    with pytest.raises(HubError, match="expected a directory"):
        resolve_file(tmp_path / "config.json", "x")
    with pytest.raises(HubError, match="neither an existing directory nor a valid hub repo id"):
        resolve_file("./no/such/dir", "config.json")
    with pytest.raises(ConfigError, match="no config.json or bert_config.json"):
        BertConfig.from_pretrained("org/not-cached", cache_dir=tmp_path)
