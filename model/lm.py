"""The spiking MLP's former module: its configuration and integer forward pass by old names.

The MLP is now the zoo's ``mlp`` composition (:mod:`model.zoo`, built of :mod:`model.blocks`);
``build_model(LMConfig(...))`` makes one. :func:`int_forward` is the contract's executor.
"""

from __future__ import annotations

import torch

from contract import zoo
from contract.zoo import IntModel

from .blocks import ALPHA_MIN
from .zoo import LMConfig

__all__ = ["ALPHA_MIN", "LMConfig", "int_forward"]


def int_forward(model: IntModel, ids, trace: bool = False):
    """Integer logits (int64 ``[N, 256]``) of ``model`` on contexts ``ids[N, k]``, by
    ``contract.graph.run`` (:func:`contract.zoo.forward`); with ``trace`` the
    :class:`contract.zoo.Trace` (NumPy logits and every layer's spikes, embedding first).
    """
    result = zoo.forward(model, ids, trace=trace)
    return result if trace else torch.from_numpy(result)
