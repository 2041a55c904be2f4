"""Fine-tune BERT for sequence classification in TensorFlow (Keras AdamW, one compiled step), save the canonical
checkpoint, and load it in the other frameworks (and `transformers`) to show the same logits.

    python examples/finetune_tf.py               # the real all-MiniLM-L6-v2, 5 steps
    python examples/finetune_tf.py --tiny        # a tiny random model, seconds
    python examples/finetune_tf.py --model DIR --steps 20 --out finetuned/

Steps: 1. the canonical checkpoint -> 2. tokenize -> 3. train a few AdamW steps -> 4. save_pretrained
-> 5. load in the other frameworks and compare logits (max |diff| <= 1e-5).
The step is `bert_tf.distributed.make_train_step`: the same code runs on several GPUs, TPU cores or hosts
when the model and optimizer are created under a `tf.distribute` strategy's scope and batches go through
`shard_batch`; save with `bert_tf.distributed.save_pretrained` (docs/scaling.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import bert_tf  # noqa: E402
from bert_tf.distributed import make_train_step  # noqa: E402
from finetune_common import TEST, TRAIN, check_other_frameworks, checkpoint_dir, encode, parse_args  # noqa: E402
from tokenization import AutoTokenizer  # noqa: E402


def save_random_base_model(config, directory):
    keras.utils.set_random_seed(0)
    bert_tf.TFBertModel(config).save_pretrained(directory)


def main() -> None:
    args = parse_args(__doc__)
    model_dir = checkpoint_dir(args, save_random_base_model)                      # 1. checkpoint
    tokenizer = AutoTokenizer.from_pretrained(model_dir)                          # 2. tokenize
    batch = {k: tf.constant(v) for k, v in encode(tokenizer, [t for t, _ in TRAIN]).items()}
    batch["labels"] = tf.constant([label for _, label in TRAIN])
    test = encode(tokenizer, TEST)

    keras.utils.set_random_seed(0)                                                # 3. train
    model = bert_tf.TFBertForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    optimizer = keras.optimizers.AdamW(args.lr, weight_decay=0.01)
    train_step = make_train_step(model, optimizer, max_grad_norm=1.0)
    for step in range(args.steps):
        metrics = train_step(batch)
        print(f"step {step + 1}/{args.steps}: loss {float(metrics['loss']):.4f}")

    model.save_pretrained(args.out)                                               # 4. save canonical
    tokenizer.save_pretrained(args.out)
    print(f"saved to {args.out}")
    logits = np.asarray(model(**test, training=False).logits)
    print(f"tf logits on the test sentences: {logits.tolist()}")
    check_other_frameworks(args.out, test, logits, ours="tf")                    # 5. same logits elsewhere


if __name__ == "__main__":
    main()
