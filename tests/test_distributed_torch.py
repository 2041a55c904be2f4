"""bert_torch under PyTorch's own engines: 2 processes on ``gloo`` (CPU), each holding half of one global
batch, take the same steps as one process holding all of it, under ``DistributedDataParallel`` and under
FSDP2 ``fully_shard`` (tied MLM decoder included); ``bert_torch.distributed.save_pretrained`` from the
wrapped or sharded model writes the canonical checkpoint, which loads back with the same outputs."""

from __future__ import annotations

import numpy as np
import pytest

from harness import TOL, free_ports, max_abs_diff, padded_batch, tiny_config_dict

torch = pytest.importorskip("torch")
mp = pytest.importorskip("torch.multiprocessing")

import bert_torch  # noqa: E402
from bert_core import BertConfig, ConfigError  # noqa: E402
from bert_torch.distributed import save_pretrained, unwrap_model  # noqa: E402

WORLD_SIZE = 2
WRAPPERS = ["ddp", "fsdp2"]
HEADS = {"sequence-classification": "BertForSequenceClassification", "masked-lm": "BertForMaskedLM"}
STEPS = 2


def global_batch(head, config):
    """8 rows; for the MLM loss every row has exactly 2 labelled tokens, so the mean over each half
    (what each rank computes, then DDP/FSDP average) equals the mean over the whole batch."""
    batch = {k: torch.from_numpy(v) for k, v in padded_batch(config.vocab_size, batch=8, seq=10, seed=3,
                                                                fully_padded_row=False).items()}
    if head == "sequence-classification":
        batch["labels"] = torch.arange(8) % config.num_labels
    else:
        labels = torch.full_like(batch["input_ids"], -100)
        labels[:, 1:3] = batch["input_ids"][:, 1:3]
        batch["labels"] = labels
    return batch


def train(model, batch, steps=STEPS):
    """AdamW steps; returns the losses, the first step's gradients (full tensors) and the model."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    losses, grads = [], None
    for _ in range(steps):
        optimizer.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        if grads is None:
            grads = {name: _full(p.grad).clone() for name, p in unwrap_model(model).named_parameters()}
        optimizer.step()
        losses.append(loss.detach())
    return torch.stack(losses), grads


def _full(tensor):
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def wrap(model, wrapper):
    if wrapper == "ddp":
        return torch.nn.parallel.DistributedDataParallel(model)
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cpu", (WORLD_SIZE,))
    for layer in model.bert.encoder.layer:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def worker(rank, port, root):
    """One rank: for each wrapper and head, load the initial checkpoint, train on this rank's half,
    save the gathered checkpoint, and (rank 0) record losses (averaged over ranks) and gradients."""
    import warnings

    warnings.filterwarnings("ignore", message=".*returned a view tensor.*")  # FSDP2's note on in-place ops
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                         world_size=WORLD_SIZE)
    try:
        for wrapper in WRAPPERS:
            for head, class_name in HEADS.items():
                model = getattr(bert_torch, class_name).from_pretrained(root / f"init-{head}")
                batch = global_batch(head, model.config)
                half = {k: v.chunk(WORLD_SIZE)[rank] for k, v in batch.items()}
                wrapped = wrap(model, wrapper)
                losses, grads = train(wrapped, half)
                torch.distributed.all_reduce(losses)
                save_pretrained(wrapped, root / f"{wrapper}-{head}")
                tied = model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight \
                    if head == "masked-lm" else True
                if rank == 0:
                    torch.save({"losses": losses / WORLD_SIZE, "grads": grads, "tied": tied},
                               root / f"{wrapper}-{head}.pt")
    finally:
        torch.distributed.destroy_process_group()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The initial checkpoints, the single-process reference runs, and the 2-process runs."""
    root = tmp_path_factory.mktemp("distributed_torch")
    reference = {}
    for head, class_name in HEADS.items():
        torch.manual_seed(0)
        config = BertConfig(**tiny_config_dict(num_labels=3, initializer_range=0.02))
        getattr(bert_torch, class_name)(config).save_pretrained(root / f"init-{head}")
        model = getattr(bert_torch, class_name).from_pretrained(root / f"init-{head}")
        losses, grads = train(model, global_batch(head, config))
        reference[head] = {"losses": losses, "grads": grads, "model": model.eval()}
    mp.spawn(worker, args=(free_ports(1)[0], root), nprocs=WORLD_SIZE, join=True)
    return root, reference


@pytest.mark.distributed
@pytest.mark.parametrize("head", list(HEADS))
@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_two_process_step_equals_single_process_step(runs, wrapper, head):
    root, reference = runs
    ours = torch.load(root / f"{wrapper}-{head}.pt")
    assert ours["tied"], "the MLM decoder must stay tied to the word embeddings under the wrapper"
    assert max_abs_diff(ours["losses"], reference[head]["losses"]) <= TOL["float32"]
    assert set(ours["grads"]) == set(reference[head]["grads"])
    assert max_abs_diff(ours["grads"], reference[head]["grads"]) <= TOL["float32"]


@pytest.mark.distributed
@pytest.mark.parametrize("head", list(HEADS))
@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_save_pretrained_from_the_wrapped_model_writes_the_canonical_checkpoint(runs, wrapper, head):
    """The gathered checkpoint holds the updated weights under the canonical keys (tied ones left out,
    like an unwrapped save) and loads into a plain model computing the reference model's outputs."""
    from safetensors import safe_open

    root, reference = runs
    expected = reference[head]["model"]
    with safe_open(root / f"{wrapper}-{head}" / "model.safetensors", "np") as f:
        keys = set(f.keys())
    assert keys == {k for k in expected.state_dict() if k not in expected.tied_keys()}
    loaded = getattr(bert_torch, HEADS[head]).from_pretrained(root / f"{wrapper}-{head}").eval()
    assert max_abs_diff(dict(loaded.named_parameters()), dict(expected.named_parameters())) <= TOL["float32"]
    inputs = {k: v for k, v in global_batch(head, expected.config).items() if k != "labels"}
    with torch.no_grad():
        assert max_abs_diff(loaded(**inputs).logits, expected(**inputs).logits) <= TOL["float32"]


def test_unwrap_model_refuses_a_foreign_module():
    with pytest.raises(ConfigError, match="holding Linear"):
        unwrap_model(torch.nn.DataParallel(torch.nn.Linear(2, 2)))


def test_save_pretrained_without_a_process_group_equals_the_plain_save(tmp_path):
    model = bert_torch.BertForMaskedLM(BertConfig(**tiny_config_dict()))
    save_pretrained(torch.nn.DataParallel(model), tmp_path / "wrapped")
    model.save_pretrained(tmp_path / "plain")
    from safetensors.numpy import load_file

    wrapped, plain = (load_file(tmp_path / d / "model.safetensors") for d in ("wrapped", "plain"))
    assert wrapped.keys() == plain.keys()
    assert all(np.array_equal(wrapped[k], plain[k]) for k in plain)
