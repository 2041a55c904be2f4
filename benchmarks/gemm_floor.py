"""The batch-1 floor: the encoder's matrix products alone, in XLA and in torch, next to the full model.

At 1 x 16 tokens all-MiniLM-L6-v2 is 36 small GEMMs (16 rows) and little else.
This times a bare stack of those GEMMs plus the GELUs (no attention, no
LayerNorm, no Python per layer) and the jitted Flax module on the same shape,
so the gap between the two is everything the model adds on top of its matmuls.

Usage:
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/gemm_floor.py [--tokens 16] [--repeats 50]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

HIDDEN, INTERMEDIATE, LAYERS = 384, 1536, 6  # all-MiniLM-L6-v2


def median_ms(fn, repeats: int) -> float:
    fn(), fn()  # warm-up (and compilation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp
    import torch

    rng = np.random.default_rng(0)
    shapes = [(HIDDEN, HIDDEN)] * 4 + [(HIDDEN, INTERMEDIATE), (INTERMEDIATE, HIDDEN)]  # q, k, v, o, in, out
    layers = [[(rng.standard_normal(s) * 0.02).astype(np.float32) for s in shapes] for _ in range(LAYERS)]
    x = rng.standard_normal((args.tokens, HIDDEN)).astype(np.float32)

    @jax.jit
    def xla_stack(weights, h):
        for q, k, v, o, w_in, w_out in weights:
            h = h + ((h @ q) + (h @ k) + (h @ v)) @ o
            h = h + jax.nn.gelu(h @ w_in, approximate=False) @ w_out
        return h

    jax_layers = jax.tree_util.tree_map(jnp.asarray, layers)
    jax_x = jnp.asarray(x)
    torch_layers = [[torch.from_numpy(w.copy()) for w in layer] for layer in layers]
    torch_x = torch.from_numpy(x.copy())

    def torch_stack():
        with torch.inference_mode():
            h = torch_x
            for q, k, v, o, w_in, w_out in torch_layers:
                h = h + ((h @ q) + (h @ k) + (h @ v)) @ o
                h = h + torch.nn.functional.gelu(h @ w_in) @ w_out
            return h

    from bert_core import BertConfig
    from bert_flax import FlaxBertModel

    config = BertConfig(vocab_size=30522, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=12,
                        intermediate_size=INTERMEDIATE)
    model = FlaxBertModel(config)
    ids = np.full((1, args.tokens), 1000, np.int64)
    inputs = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}

    gflop = 2 * args.tokens * LAYERS * sum(a * b for a, b in shapes) / 1e9
    print(f"1 x {args.tokens} tokens, {gflop:.2f} GFLOP of matmuls; medians of {args.repeats}")
    print(f"  bare GEMM stack, XLA   {median_ms(lambda: xla_stack(jax_layers, jax_x).block_until_ready(), args.repeats):6.2f} ms")
    print(f"  bare GEMM stack, torch {median_ms(torch_stack, args.repeats):6.2f} ms")
    print(f"  FlaxBertModel (jitted) {median_ms(lambda: model(**inputs).last_hidden_state.block_until_ready(), args.repeats):6.2f} ms")


if __name__ == "__main__":
    main()
