"""SpikeForge hardware: a plain Amaranth 0.5 component library for the accumulate-only array.

It imports neither torch nor the model nor the contract: :class:`AcceleratorParams` (numbers
and NumPy arrays) is its only input. See docs/architecture.md.
"""

from .accelerator import Accelerator
from .array import ArrayRow, SystolicArray
from .export import verilog
from .harness import InferenceHarness
from .neuron import NeuronLane
from .params import AcceleratorParams, HiddenLayerParams, ReadoutParams
from .pe import PEOp, ProcessingElement
from .scanner import Scanner, WordFetch
from .sequencer import Sequencer
from .streamer import OutputStreamer
from .synth_top import SynthTop
from .token import TokenKind

__all__ = [
    "Accelerator",
    "AcceleratorParams",
    "ArrayRow",
    "HiddenLayerParams",
    "InferenceHarness",
    "NeuronLane",
    "OutputStreamer",
    "PEOp",
    "ProcessingElement",
    "ReadoutParams",
    "Scanner",
    "Sequencer",
    "SynthTop",
    "SystolicArray",
    "TokenKind",
    "WordFetch",
    "verilog",
]
