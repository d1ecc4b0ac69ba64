"""The spiking transformer's accelerator: a layer program on one accumulate-only array.

Built from :class:`TransformerParams` only (numbers and NumPy arrays); see
docs/transformer-hw.md. It reuses the MLP's processing element, neuron lane, scanner, word
fetch, register slices and output streamer.
"""

from .accelerator import TransformerAccelerator, TransformerArray
from .harness import StreamHarness
from .params import LayerKind, Region, TransformerParams, XLayer
from .row import TransformerRow
from .score import ScoreUnit
from .sequencer import ProgramSequencer

__all__ = [
    "LayerKind",
    "ProgramSequencer",
    "Region",
    "ScoreUnit",
    "StreamHarness",
    "TransformerAccelerator",
    "TransformerArray",
    "TransformerParams",
    "TransformerRow",
    "XLayer",
]
