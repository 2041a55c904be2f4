"""The one compiled ``module.apply`` behind every wrapper call."""

from __future__ import annotations

import copy
import functools

import jax
from flax.core import unfreeze

from .generation import cache_index

__all__ = ["ModuleKey", "compiled_apply"]


class ModuleKey:
    """A hashable stand-in for a linen module (its config is a mutable, unhashable object).

    Two wrappers whose modules have the same class, config and options share compiled code, and
    editing ``model.config`` after construction recompiles instead of reusing a stale function
    (a wrapper keeps its key while :meth:`is_current` holds, so a call does not re-serialise the config).
    """

    __slots__ = ("module", "_key", "_config_state")

    def __init__(self, module) -> None:
        self.module = module
        fields = {f: getattr(module, f) for f in module.__dataclass_fields__ if f not in ("config", "parent", "name")}
        self._key = (type(module), module.config.to_json_string(), repr(sorted(fields.items(), key=str)))
        self._config_state = copy.deepcopy(vars(module.config))

    def is_current(self, module) -> bool:
        """True while ``module`` is the module keyed and its config is unchanged (a dict comparison, microseconds)."""
        return module is self.module and vars(module.config) == self._config_state

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModuleKey) and self._key == other._key


@functools.partial(jax.jit, static_argnames=("module_key", "train", "output_attentions", "output_hidden_states",
                                             "zero_padding"))
def compiled_apply(params, inputs, dropout_rng, cache, packing=None, *, module_key, train, output_attentions,
                    output_hidden_states, zero_padding=False):
    """``module.apply`` for the wrappers, compiled once per module, input shapes and switches.

    ``zero_padding`` / ``packing`` (``(indices, slots)``, :func:`bert_flax.unpad.packing_indices`): the
    inference rule of :mod:`bert_core.unpad`, decided by the wrapper; each token bucket is a shape.
    """
    module = module_key.module
    variables = {"params": params}
    kwargs = dict(deterministic=not train, output_attentions=output_attentions,
                  output_hidden_states=output_hidden_states, return_dict=True)
    if zero_padding:
        kwargs.update(zero_padding=True, packing=packing)
    rngs = {"dropout": dropout_rng} if dropout_rng is not None else {}
    if cache is None:
        return module.apply(variables, **inputs, **kwargs, rngs=rngs)
    variables["cache"] = cache
    output, mutated = module.apply(variables, **inputs, **kwargs, past_key_values_length=cache_index(cache), rngs=rngs,
                                   mutable=["cache"])
    output.past_key_values = unfreeze(mutated["cache"])
    return output
