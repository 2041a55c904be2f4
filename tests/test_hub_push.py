"""``push_to_hub`` on models (three backends) and tokenizers, through huggingface_hub, without network.

huggingface_hub is pointed at a local server (tests/hub_server.py) that speaks
the hub's HTTP API. This runs huggingface_hub's real client code (repo
creation, branch, pre-upload, the NDJSON commit) instead of a mock of
``HfApi``, so a change in what push_to_hub sends, or in the client, shows up
here; and what the server received is loaded back with ``from_pretrained``.
"""

from __future__ import annotations

import numpy as np
import pytest

from bert_core import BertConfig
from harness import assert_close, padded_batch, tiny_config_dict
from hub_server import serve

TOKEN = "hf_not_a_real_token"


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """The local hub; huggingface_hub talks to it (and to nothing else) for the test."""
    from huggingface_hub import constants

    server, stop = serve(tmp_path / "hub")
    monkeypatch.setattr(constants, "ENDPOINT", server.url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # conftest sets offline; the endpoint is local
    yield server
    stop()


def _masked_lm(framework: str):
    """(model, forward) of a tiny random BertForMaskedLM in ``framework``; forward returns numpy logits."""
    config = BertConfig(**tiny_config_dict())
    batch = padded_batch(config.vocab_size, fully_padded_row=False)  # transformers un-masks an all-padding row
    ids, mask = batch["input_ids"], batch["attention_mask"]
    if framework == "torch":
        import torch

        import bert_torch
        from bert_torch.unpad import padding_read

        def forward(m):
            with torch.no_grad(), padding_read():  # every position, padding included: the padded path
                return m(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).logits.numpy()

        return bert_torch.BertForMaskedLM(config).eval(), bert_torch.BertForMaskedLM, forward
    if framework == "tf":
        import bert_tf

        def forward(m):
            return np.asarray(m(input_ids=ids, attention_mask=mask, training=False).logits)

        return bert_tf.TFBertForMaskedLM(config), bert_tf.TFBertForMaskedLM, forward
    import bert_flax

    def forward(m):
        return np.asarray(m(input_ids=ids, attention_mask=mask).logits)

    return bert_flax.FlaxBertForMaskedLM(config, seed=3), bert_flax.FlaxBertForMaskedLM, forward


@pytest.mark.parametrize("framework", ["torch", "tf", "flax"])
def test_pushed_model_reloads_to_the_same_outputs(hub, framework):
    model, cls, forward = _masked_lm(framework)
    expected = forward(model)
    info = model.push_to_hub("tester/tiny-bert", token=TOKEN, private=True)

    create = hub.requests[0]
    assert create.path == "/api/repos/create" and create.body["name"] == "tiny-bert"
    assert create.body.get("visibility", create.body.get("private")) in ("private", True)  # hub client 2.x / 0.x
    assert all(r.authorization == f"Bearer {TOKEN}" for r in hub.requests)
    (commit,) = [r for r in hub.requests if "/commit/" in r.path]
    assert commit.path == "/api/models/tester/tiny-bert/commit/main"
    assert commit.body[0]["value"]["summary"] == "Upload model"  # transformers' default message
    assert info.oid == "0" * 40 and info.pr_url is None

    folder = hub.folder("tester/tiny-bert")
    assert {"config.json", "model.safetensors"} <= {p.name for p in folder.iterdir()}
    assert_close(forward(cls.from_pretrained(folder)), expected)


def test_pushed_model_loads_in_transformers(hub):
    """What tribert pushes is the canonical checkpoint: transformers reads it to the same logits."""
    import torch
    import transformers

    model, _, forward = _masked_lm("torch")
    model.push_to_hub("tester/for-transformers", token=TOKEN)
    reference = transformers.BertForMaskedLM.from_pretrained(hub.folder("tester/for-transformers")).eval()
    assert_close(forward(reference), forward(model))


def test_revision_and_pull_request_reach_the_hub(hub):
    model, _, _ = _masked_lm("torch")
    model.push_to_hub("tester/tiny-bert", token=TOKEN, revision="dev", commit_message="fine-tuned",
                      commit_description="two epochs")  # fmt: skip
    assert [r.path for r in hub.requests if "/branch/" in r.path] == ["/api/models/tester/tiny-bert/branch/dev"]
    (commit,) = [r for r in hub.requests if "/commit/" in r.path]
    assert commit.path.endswith("/commit/dev") and "create_pr" not in commit.query
    assert commit.body[0]["value"] == {"summary": "fine-tuned", "description": "two epochs"}
    assert (hub.folder("tester/tiny-bert", "dev") / "model.safetensors").is_file()

    hub.requests.clear()
    info = model.push_to_hub("tester/tiny-bert", token=TOKEN, create_pr=True)
    (commit,) = [r for r in hub.requests if "/commit/" in r.path]
    assert commit.query == {"create_pr": ["1"]} and not any("/branch/" in r.path for r in hub.requests)
    assert info.pr_url.endswith("/tester/tiny-bert/discussions/1")
    assert (hub.folder("tester/tiny-bert", "refs/pr/1") / "config.json").is_file()


def test_unsafe_serialization_is_refused_before_any_request(hub):
    model, _, _ = _masked_lm("torch")
    with pytest.raises(ValueError, match="safetensors"):
        model.push_to_hub("tester/tiny-bert", token=TOKEN, safe_serialization=False)
    assert hub.requests == []


@pytest.mark.parametrize("name", ["BertTokenizer", "BertTokenizerFast"])
def test_pushed_tokenizer_reloads_to_the_same_encoding(hub, tmp_path, name):
    import tokenization

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s", "tri", "##bert"]) + "\n")
    tokenizer = getattr(tokenization, name)(vocab_file=str(vocab))
    tokenizer.add_tokens(["<new>"])
    tokenizer.push_to_hub("tester/tok", token=TOKEN)

    (commit,) = [r for r in hub.requests if "/commit/" in r.path]
    assert commit.body[0]["value"]["summary"] == "Upload tokenizer"
    reloaded = getattr(tokenization, name).from_pretrained(hub.folder("tester/tok"))
    text = ["Hello worlds <new> tribert", "unknown words"]
    assert reloaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert reloaded.convert_ids_to_tokens(reloaded("<new>")["input_ids"]) == ["[CLS]", "<new>", "[SEP]"]


def test_pushed_config_reloads_equal(hub):
    config = BertConfig(**tiny_config_dict(num_labels=5))
    config.push_to_hub("tester/config-only", token=TOKEN)
    (commit,) = [r for r in hub.requests if "/commit/" in r.path]
    assert commit.body[0]["value"]["summary"] == "Upload config"
    assert [line["value"]["path"] for line in commit.body[1:]] == ["config.json"]
    assert BertConfig.from_pretrained(hub.folder("tester/config-only")).to_dict() == config.to_dict()
