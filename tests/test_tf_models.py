"""bert_tf's public names. Its numbers against transformers are the parity matrix's (tests/parity/test_matrix.py)."""

from __future__ import annotations

import bert_tf
from test_tf_helpers import CLASS_NAMES


def test_unprefixed_names_are_the_tf_classes():
    for class_name in CLASS_NAMES:
        assert getattr(bert_tf, class_name) is getattr(bert_tf, "TF" + class_name)
    assert bert_tf.TFBertForPreTrainingOutput is bert_tf.BertForPreTrainingOutput
