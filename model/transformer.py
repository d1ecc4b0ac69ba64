"""The spiking transformer's former module: its configuration and integer forward pass.

The transformer is now the zoo's ``transformer`` composition (:mod:`model.zoo`, built of
:mod:`model.blocks` and :mod:`model.attention`); ``build_model(TransformerConfig(...))`` makes
one. :func:`int_forward` is the contract's executor. Design, folding and widths:
docs/transformer.md.
"""

from __future__ import annotations

import torch

from contract import zoo
from contract.zoo import IntTransformer

from .blocks import EMBED_BITS, out_shift
from .zoo import TransformerConfig

__all__ = ["EMBED_BITS", "TransformerConfig", "int_forward", "out_shift"]


def int_forward(model: IntTransformer, ids, all_positions: bool = False) -> torch.Tensor:
    """Integer logits of the last position (int64 ``[N, 256]``; ``all_positions``:
    ``[N, L, 256]``) of byte streams ``ids[N, L]``, by ``contract.graph.run``."""
    return torch.from_numpy(zoo.forward_streams(model, ids, all_positions=all_positions))
