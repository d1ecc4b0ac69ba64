"""SpikeForge hardware: a plain Amaranth 0.5 component library for the accumulate-only array.

One accelerator, :class:`Accelerator`, runs a layer program (embedding, norms, linear layers,
attention, residual adds, readout) on one array of accumulate-only PEs; the score unit, the
value caches and the residual banks are built only when the program uses them. It imports
neither torch nor the model nor the contract: :class:`AcceleratorParams` (numbers and NumPy
arrays) is its only input. See docs/architecture.md.
"""

from .accelerator import Accelerator, SystolicArray
from .bridge import UartBridge
from .export import verilog
from .harness import InferenceHarness
from .neuron import NeuronLane
from .params import AcceleratorParams, LayerKind, Region, XLayer
from .pe import PEOp, ProcessingElement
from .row import ArrayRow
from .scanner import Scanner, WordFetch
from .score import ScoreUnit
from .sequencer import Sequencer
from .streamer import OutputStreamer
from .synth_top import SynthTop
from .token import TokenKind
from .uart import UartRx, UartTx

__all__ = [
    "Accelerator",
    "AcceleratorParams",
    "ArrayRow",
    "InferenceHarness",
    "LayerKind",
    "NeuronLane",
    "OutputStreamer",
    "PEOp",
    "ProcessingElement",
    "Region",
    "Scanner",
    "ScoreUnit",
    "Sequencer",
    "SynthTop",
    "SystolicArray",
    "TokenKind",
    "UartBridge",
    "UartRx",
    "UartTx",
    "WordFetch",
    "XLayer",
    "verilog",
]
