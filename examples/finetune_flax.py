"""Fine-tune BERT for sequence classification in Flax (optax AdamW, one jitted step), save the canonical
checkpoint, and load it in the other frameworks (and `transformers`) to show the same logits.

    python examples/finetune_flax.py             # the real all-MiniLM-L6-v2, 5 steps
    python examples/finetune_flax.py --tiny      # a tiny random model, seconds
    python examples/finetune_flax.py --model DIR --steps 20 --out finetuned/

Steps: 1. the canonical checkpoint -> 2. tokenize -> 3. train a few AdamW steps -> 4. save_pretrained
-> 5. load in the other frameworks and compare logits (max |diff| <= 1e-5).
On a device mesh (TPU pods, several GPUs), shard the state with `bert_flax.sharding` and use
`make_sharded_train_step` in place of `make_train_step` (docs/scaling.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import numpy as np  # noqa: E402

import bert_flax  # noqa: E402
from bert_flax.training import TrainState, create_optimizer, make_train_step  # noqa: E402
from finetune_common import TEST, TRAIN, check_other_frameworks, checkpoint_dir, encode, parse_args  # noqa: E402
from tokenization import AutoTokenizer  # noqa: E402


def save_random_base_model(config, directory):
    bert_flax.FlaxBertModel(config, seed=0).save_pretrained(directory)


def main() -> None:
    args = parse_args(__doc__)
    model_dir = checkpoint_dir(args, save_random_base_model)                      # 1. checkpoint
    tokenizer = AutoTokenizer.from_pretrained(model_dir)                          # 2. tokenize
    batch = encode(tokenizer, [t for t, _ in TRAIN])
    batch["labels"] = np.array([label for _, label in TRAIN])
    test = encode(tokenizer, TEST)

    model = bert_flax.FlaxBertForSequenceClassification.from_pretrained(model_dir, num_labels=2, seed=0)
    optimizer, _ = create_optimizer(args.lr, num_train_steps=args.steps + 1, num_warmup_steps=0,  # 3. train
                                    weight_decay_rate=0.01, adam_global_clipnorm=1.0)
    state = TrainState.create(apply_fn=model.module.apply, params=model.params, tx=optimizer)
    train_step = make_train_step(model, loss="sequence-classification")
    dropout_rng = jax.random.PRNGKey(0)
    for step in range(args.steps):
        state, metrics = train_step(state, batch, dropout_rng)
        print(f"step {step + 1}/{args.steps}: loss {float(metrics['loss']):.4f}")

    model.save_pretrained(args.out, params=state.params)                          # 4. save canonical
    tokenizer.save_pretrained(args.out)
    print(f"saved to {args.out}")
    logits = np.asarray(model(**test, params=state.params).logits)
    print(f"flax logits on the test sentences: {logits.tolist()}")
    check_other_frameworks(args.out, test, logits, ours="flax")                  # 5. same logits elsewhere


if __name__ == "__main__":
    main()
