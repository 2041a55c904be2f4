"""``from_pretrained`` / ``save_pretrained`` through ``conversion`` (the canonical safetensors checkpoint).

Loading builds the model on the ``meta`` device, allocates it once on the
target device and dtype, and copies every tensor from the memory-mapped file
block by block (``conversion.safetensors_io.read_blocks`` drops each block's
file pages once copied), so peak memory stays at one copy of the weights plus
one block (measured 1.0x the weights above the baseline, ``tests/test_load_memory.py``).
Weights the checkpoint lacks are then initialised like ``transformers``.
"""

from __future__ import annotations

import inspect
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from bert_core.config import BertConfig
from bert_core.errors import ConfigError
from conversion import ResolvedCheckpoint, match_state, resolve_checkpoint, save_checkpoint
from conversion.checkpoint import PT_WEIGHTS_NAME
from conversion.safetensors_io import read_blocks

__all__ = ["from_pretrained", "save_pretrained", "resolve_dtype", "resolve_device"]

logger = logging.getLogger("bert_torch")

_DTYPE_NAMES = {"float32": torch.float32, "float": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                "bf16": torch.bfloat16, "float16": torch.float16, "half": torch.float16, "fp16": torch.float16}


def resolve_dtype(dtype: Any, config: BertConfig | None = None, tensors: Mapping[str, np.ndarray] | None = None
                  ) -> torch.dtype:
    """The parameter dtype for a ``dtype=`` argument.

    None means float32. ``"auto"`` reads ``config.dtype`` / ``config.torch_dtype`` and
    otherwise the first floating tensor of the checkpoint.

    Raises:
        ConfigError: an unknown name or a non-floating dtype.
    """
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise ConfigError(f"dtype must be a floating dtype, got {dtype}")
        return dtype
    if dtype == "auto":
        named = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
        if named:
            return resolve_dtype(str(named).replace("torch.", ""))
        for value in (tensors or {}).values():
            if value.dtype.kind == "f" or value.dtype.name == "bfloat16":
                return resolve_dtype(value.dtype.name)
        return torch.float32
    if isinstance(dtype, str) and dtype.replace("torch.", "") in _DTYPE_NAMES:
        return _DTYPE_NAMES[dtype.replace("torch.", "")]
    raise ConfigError(f"dtype {dtype!r} is not supported; use a torch floating dtype, one of "
                      f"{sorted(_DTYPE_NAMES)} or 'auto'")


def resolve_device(device_map: Any) -> torch.device:
    """The one device a ``device_map`` places the model on.

    Accepts None (cpu), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, an int (a GPU index), a
    ``torch.device``, ``"auto"`` (the first GPU if any, else cpu), or a dict whose
    values all name the same device (``{"": "cuda:0"}``).

    Raises:
        ConfigError: a dict spreading the model over several devices (use FSDP or
            DDP for multi-device work) or an unknown value.
    """
    if device_map is None:
        return torch.device("cpu")
    if device_map == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if isinstance(device_map, dict):
        devices = {str(resolve_device(v)) for v in device_map.values()}
        if len(devices) != 1:
            raise ConfigError(f"device_map {device_map!r} spreads the model over {sorted(devices)}; bert_torch places "
                              f"a model on one device (use FSDP / DDP to scale out)")
        return torch.device(devices.pop())
    if isinstance(device_map, int) and not isinstance(device_map, bool):
        return torch.device("cuda", device_map)
    try:
        return torch.device(device_map)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device_map {device_map!r} is not a device, a dict or 'auto'") from None


def _to_torch(array: np.ndarray) -> torch.Tensor:
    if array.dtype.name == "bfloat16":  # ml_dtypes: torch cannot read it, reinterpret the bits
        return torch.from_numpy(np.ascontiguousarray(array).view(np.int16)).view(torch.bfloat16)
    with warnings.catch_warnings():
        # The memory map is read-only; the tensor is only a source for copy_().
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


def _from_state_dict(name_or_path, config: BertConfig | None, state_dict: Mapping[str, torch.Tensor],
                     hub: dict[str, Any], overrides: dict[str, Any]) -> ResolvedCheckpoint:
    """The checkpoint of ``from_pretrained(..., state_dict=...)``: these tensors, the given config (or the
    one at ``name_or_path``), as ``transformers`` loads a state dict instead of the weight file."""
    if config is None:
        if name_or_path is None:
            raise ConfigError("from_pretrained(None, ...) needs config= and state_dict= (transformers' rule)")
        config = BertConfig.from_pretrained(name_or_path, **hub)
    for key, value in overrides.items():
        setattr(config, key, value)
    config.validate()
    tensors = {key: _to_numpy(value) for key, value in state_dict.items()}
    return ResolvedCheckpoint(config, tensors, "the state_dict argument", Path(name_or_path or "."))


def from_pretrained(
    model_class: type,
    name_or_path: str | os.PathLike | None,
    *,
    config: BertConfig | None = None,
    state_dict: Mapping[str, torch.Tensor] | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    dtype: Any = None,
    torch_dtype: Any = None,
    device_map: Any = None,
    attn_implementation: str | None = None,
    ignore_mismatched_sizes: bool = False,
    output_loading_info: bool = False,
    **config_overrides: Any,
):
    """Load ``model_class`` from a local directory or hub repo id.

    Args:
        name_or_path: a directory with ``config.json`` + ``model.safetensors`` (or a sharded
            index, or ``pytorch_model.bin``), or a hub id resolved through the HF cache
            (``revision``, ``cache_dir``, ``local_files_only``, ``token``, ``HF_HUB_OFFLINE``).
        config: use this config instead of the checkpoint's ``config.json``.
        dtype: ``torch.float32`` (default) / ``bfloat16`` / ``float16``, a name, or ``"auto"``;
            ``torch_dtype`` is an alias.
        state_dict: load these tensors (canonical or ``transformers`` keys) instead of the weight file;
            ``name_or_path`` may then be None when ``config`` is given.
        device_map: where the parameters live (see :func:`resolve_device`).
        attn_implementation: ``"sdpa"`` (default) or ``"eager"``.
        ignore_mismatched_sizes: re-initialise shape-mismatched weights instead of raising.
        output_loading_info: also return the report dict (missing / unexpected / mismatched / tied keys).
        **config_overrides: config fields to change (``num_labels=3``); the model's own constructor
            arguments (``add_pooling_layer=False``) go to the constructor.

    Returns:
        The model in eval mode, or ``(model, info)`` with ``output_loading_info``.

    Raises:
        ConfigError / CheckpointError: no config or weights, or shapes that do not fit
            (naming the key and both shapes).
    """
    if dtype is not None and torch_dtype is not None and dtype != torch_dtype:
        raise ConfigError(f"dtype={dtype!r} and torch_dtype={torch_dtype!r} disagree; pass only dtype")
    if config is not None:
        config = config.copy()  # overrides must not leak into the caller's object
    # Constructor arguments (BertModel's add_pooling_layer) go to the model, the rest to the config.
    init_args = set(inspect.signature(model_class.__init__).parameters) - {"self", "config"}
    model_kwargs = {k: config_overrides.pop(k) for k in list(config_overrides) if k in init_args}
    hub = dict(revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token)
    if state_dict is not None:
        checkpoint = _from_state_dict(name_or_path, config, state_dict, hub, config_overrides)
    elif name_or_path is None:
        raise ConfigError("from_pretrained needs pretrained_model_name_or_path (or config= and state_dict=)")
    else:
        checkpoint = resolve_checkpoint(name_or_path, config=config, **hub, **config_overrides)
    param_dtype = resolve_dtype(dtype if dtype is not None else torch_dtype, checkpoint.config, checkpoint.tensors)
    device = resolve_device(device_map)

    with torch.device("meta"):
        model = model_class(checkpoint.config, **model_kwargs)
    model = model.to(param_dtype).to_empty(device=device)
    model.tie_weights()  # to_empty replaced each shared parameter separately
    if attn_implementation is not None:
        model.set_attn_implementation(attn_implementation)

    state = model.state_dict(keep_vars=True)
    report = match_state(checkpoint.shapes(), {k: tuple(v.shape) for k, v in state.items()},
                         tied=model.tied_keys(), ignore_mismatched_sizes=ignore_mismatched_sizes,
                         source=checkpoint.source)
    with torch.no_grad():
        for target, source_key in report.assignments.items():
            for index, block in read_blocks(checkpoint.tensors, source_key):
                state[target][index].copy_(_to_torch(block))
        for key in [*report.missing_keys, *(k for k, _, _ in report.mismatched_keys)]:
            model._init_key(key)
    model.tie_weights()
    model._mark_initialized()  # loaded or initialised: post_init() must not draw them again
    model.eval()

    name = type(model).__name__
    if report.missing_keys or report.unexpected_keys or report.mismatched_keys:
        logger.warning(report.summary(name))
    else:
        logger.info(report.summary(name))
    return (model, report.as_dict()) if output_loading_info else model


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    tensor = tensor.detach().cpu().contiguous()
    if tensor.dtype == torch.bfloat16:
        import ml_dtypes

        return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return tensor.numpy()


def save_pretrained(
    model,
    save_directory: str | os.PathLike,
    *,
    max_shard_size: int | str = "5GB",
    safe_serialization: bool = True,
    state_dict: Mapping[str, torch.Tensor] | None = None,
) -> None:
    """Write ``config.json`` and the canonical weights into ``save_directory``.

    The keys are those ``transformers`` 5.x writes for the same class: tied
    weights (``cls.predictions.decoder.*``) are left out, ``BertModel`` keys have
    no ``bert.`` prefix. Files are written atomically; above ``max_shard_size``
    the weights are sharded with a ``model.safetensors.index.json``.
    ``safe_serialization=False`` writes a legacy ``pytorch_model.bin`` instead.

    Raises:
        ConfigError: ``save_directory`` is an existing file.
    """
    directory = Path(save_directory)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"save_pretrained needs a directory, but {directory} is a file")
    directory.mkdir(parents=True, exist_ok=True)
    # transformers 5.x leaves every tied key out when tie_word_embeddings, and writes them all otherwise.
    skipped = model.tied_keys() if model.config.tie_word_embeddings else {}
    if state_dict is None:
        state_dict = model.state_dict()
    tensors = {k: v for k, v in state_dict.items() if k not in skipped}
    if safe_serialization:
        save_checkpoint({k: _to_numpy(v) for k, v in tensors.items()}, directory, max_shard_size=max_shard_size)
    else:
        handle, tmp = tempfile.mkstemp(dir=directory, prefix=f".{PT_WEIGHTS_NAME}.")
        os.close(handle)
        try:
            torch.save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp)
            os.replace(tmp, directory / PT_WEIGHTS_NAME)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    config = model.config.copy(architectures=[type(model).__name__])
    config.save_pretrained(directory)
