"""Fine-tune BERT for sequence classification in PyTorch, save the canonical checkpoint, and load it in
the other frameworks (and `transformers`) to show the same logits.

    python examples/finetune_torch.py            # the real all-MiniLM-L6-v2, 5 steps
    python examples/finetune_torch.py --tiny     # a tiny random model, seconds
    python examples/finetune_torch.py --model DIR --steps 20 --out finetuned/

Steps: 1. the canonical checkpoint -> 2. tokenize -> 3. train a few AdamW steps -> 4. save_pretrained
-> 5. load in the other frameworks and compare logits (max |diff| <= 1e-5).
For several GPUs or hosts, wrap the model in DistributedDataParallel or FSDP2 and save with
`bert_torch.distributed.save_pretrained` (docs/scaling.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import bert_torch  # noqa: E402
from finetune_common import TEST, TRAIN, check_other_frameworks, checkpoint_dir, encode, parse_args  # noqa: E402
from tokenization import AutoTokenizer  # noqa: E402


def save_random_base_model(config, directory):
    torch.manual_seed(0)
    bert_torch.BertModel(config).save_pretrained(directory)


def main() -> None:
    args = parse_args(__doc__)
    model_dir = checkpoint_dir(args, save_random_base_model)                      # 1. checkpoint
    tokenizer = AutoTokenizer.from_pretrained(model_dir)                          # 2. tokenize
    train = {k: torch.from_numpy(v) for k, v in encode(tokenizer, [t for t, _ in TRAIN]).items()}
    labels = torch.tensor([label for _, label in TRAIN])
    test = encode(tokenizer, TEST)

    torch.manual_seed(0)                                                          # 3. train
    model = bert_torch.BertForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    model.train()
    for step in range(args.steps):
        loss = model(**train, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        print(f"step {step + 1}/{args.steps}: loss {loss.item():.4f}")

    model.save_pretrained(args.out)                                               # 4. save canonical
    tokenizer.save_pretrained(args.out)
    print(f"saved to {args.out}")
    model.eval()
    with torch.no_grad():
        logits = model(**{k: torch.from_numpy(v) for k, v in test.items()}).logits.numpy()
    print(f"torch logits on the test sentences: {logits.tolist()}")
    check_other_frameworks(args.out, test, logits, ours="torch")                 # 5. same logits elsewhere


if __name__ == "__main__":
    main()
