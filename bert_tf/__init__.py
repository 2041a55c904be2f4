"""Keras 3 (TensorFlow backend) implementation of tribert's BERT.

The model classes land with the TensorFlow backend issue; this package
imports nothing from torch or jax.
"""

__all__: list[str] = []
