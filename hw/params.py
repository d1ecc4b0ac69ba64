"""The parameters of one accelerator build: plain numbers and NumPy arrays, validated once.

:class:`AcceleratorParams` is the only input of :class:`hw.Accelerator`. It knows nothing of the
model format it came from (``rtl_gen`` builds it from the compiler IR, tests from an integer
model); it holds the integers of docs/integer-contract.md and the shape of the array, and derives
the numbers docs/architecture.md names (tiles, memory depths, bases).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .checks import positive_int

__all__ = ["VOCAB", "AcceleratorParams", "HiddenLayerParams", "ReadoutParams"]

logger = logging.getLogger(__name__)

VOCAB = 256
SPIKE_COUNT_BITS = 24


def address_bits(depth: int) -> int:
    """Bits of an address into ``depth`` rows (at least 1)."""
    return max(1, (depth - 1).bit_length())


def _int_array(name: str, value, shape: tuple) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, not {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, not {arr.shape}")
    arr = arr.astype(np.int64)
    arr.setflags(write=False)
    return arr


def _fits_signed(name: str, arr: np.ndarray, bits: int, width_name: str):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
        raise ValueError(
            f"{name} spans [{int(arr.min())}, {int(arr.max())}], beyond the signed {bits}-bit "
            f"range [{lo}, {hi}]: raise {width_name}"
        )


@dataclass(frozen=True, eq=False)
class HiddenLayerParams:
    """A hidden (spiking) layer: ``weight[n_out, n_in]``, ``bias[n_out]``, threshold Θ, reset R."""

    weight: np.ndarray
    bias: np.ndarray
    threshold: int
    reset: int

    def __post_init__(self):
        weight = np.asarray(self.weight)
        if weight.ndim != 2:
            raise ValueError(f"hidden layer weight must be 2-D [n_out, n_in], not {weight.shape}")
        object.__setattr__(self, "weight", _int_array("hidden layer weight", weight, weight.shape))
        object.__setattr__(
            self, "bias", _int_array("hidden layer bias", self.bias, (weight.shape[0],))
        )
        object.__setattr__(self, "threshold", positive_int("threshold", self.threshold))
        object.__setattr__(self, "reset", positive_int("reset", self.reset))
        if 0 in weight.shape:
            raise ValueError(f"hidden layer weight must not be empty, not shape {weight.shape}")

    @property
    def n_in(self) -> int:
        return self.weight.shape[1]

    @property
    def n_out(self) -> int:
        return self.weight.shape[0]


@dataclass(frozen=True, eq=False)
class ReadoutParams:
    """The readout layer: ``weight[256, n_in]`` and ``bias[256]``; the logits are its membranes."""

    weight: np.ndarray
    bias: np.ndarray

    def __post_init__(self):
        weight = np.asarray(self.weight)
        if weight.ndim != 2 or weight.shape[0] != VOCAB or weight.shape[1] < 1:
            raise ValueError(f"readout weight must have shape [{VOCAB}, n_in], not {weight.shape}")
        object.__setattr__(self, "weight", _int_array("readout weight", weight, weight.shape))
        object.__setattr__(self, "bias", _int_array("readout bias", self.bias, (VOCAB,)))

    @property
    def n_in(self) -> int:
        return self.weight.shape[1]

    @property
    def n_out(self) -> int:
        return VOCAB


@dataclass(frozen=True, eq=False)
class AcceleratorParams:
    """Everything :class:`hw.Accelerator` is built from.

    Fields (all plain Python numbers or NumPy integer arrays):

    - ``rows``, ``cols``: the array shape ``R x C`` (``P = R*C`` processing elements).
    - ``timesteps`` ``T``, ``context`` ``k``, ``embed_dim`` ``E``.
    - ``spike_table``: int ``[256, T, E]``, entries in {-1, 0, +1}.
    - ``layers``: a sequence of :class:`HiddenLayerParams` (at least one); layer 0 takes
      ``k*E`` inputs, layer ``h`` takes layer ``h-1``'s outputs.
    - ``readout``: :class:`ReadoutParams`, taking the last hidden layer's outputs.
    - ``weight_bits``, ``bias_bits``, ``membrane_bits``: signed widths ``Wb``, ``Bb``, ``Mb``
      (``contract.derive_widths`` gives them; ``Mb`` is also the logit width). Every weight,
      bias, threshold and reset must fit, and ``Mb`` must hold the worst-case membrane of
      docs/integer-contract.md, or the constructor raises :class:`ValueError`.
    - ``dense``: build the dense scan mode (an EVENT for every input, zero or not), for
      comparison with the event-driven default.

    Raises :class:`TypeError` for a value of the wrong type and :class:`ValueError` for a value
    out of range; the message names the parameter.
    """

    rows: int
    cols: int
    timesteps: int
    context: int
    embed_dim: int
    spike_table: np.ndarray
    layers: tuple[HiddenLayerParams, ...]
    readout: ReadoutParams
    weight_bits: int
    bias_bits: int
    membrane_bits: int
    dense: bool = False

    def __post_init__(self):
        for name in ("rows", "cols", "timesteps", "context", "embed_dim"):
            object.__setattr__(self, name, positive_int(name, getattr(self, name)))
        for name in ("weight_bits", "bias_bits", "membrane_bits"):
            object.__setattr__(self, name, positive_int(name, getattr(self, name)))
        if self.membrane_bits < 2:
            raise ValueError(
                f"membrane_bits must be at least 2 (it holds a threshold >= 1), "
                f"not {self.membrane_bits}"
            )
        for name in ("weight_bits", "bias_bits"):
            if getattr(self, name) > self.membrane_bits:
                raise ValueError(
                    f"{name} ({getattr(self, name)}) must not exceed membrane_bits "
                    f"({self.membrane_bits})"
                )
        if not isinstance(self.dense, bool | np.bool_):
            raise TypeError(f"dense must be a bool, not {self.dense!r}")
        object.__setattr__(self, "dense", bool(self.dense))
        table = _int_array(
            "spike_table", self.spike_table, (VOCAB, self.timesteps, self.embed_dim)
        )
        if table.min() < -1 or table.max() > 1:
            raise ValueError("spike_table entries must be -1, 0 or +1")
        object.__setattr__(self, "spike_table", table)
        layers = tuple(self.layers)
        if not layers:
            raise ValueError("layers must hold at least one HiddenLayerParams")
        for index, layer in enumerate(layers):
            if not isinstance(layer, HiddenLayerParams):
                raise TypeError(f"layers[{index}] must be a HiddenLayerParams, not {layer!r}")
        object.__setattr__(self, "layers", layers)
        if not isinstance(self.readout, ReadoutParams):
            raise TypeError(f"readout must be a ReadoutParams, not {self.readout!r}")
        n_in = self.context * self.embed_dim
        for index, layer in enumerate((*layers, self.readout)):
            if layer.n_in != n_in:
                name = f"layers[{index}]" if index < len(layers) else "readout"
                raise ValueError(f"{name} takes {layer.n_in} inputs but receives {n_in}")
            n_in = layer.n_out
        self._check_widths()
        logger.debug(
            "accelerator %dx%d, T=%d, layers %s, tiles %s", self.rows, self.cols,
            self.timesteps, self.n_outs, self.tiles,
        )

    def _check_widths(self):
        wb, bb, mb = self.weight_bits, self.bias_bits, self.membrane_bits
        for index, layer in enumerate(self.all_layers):
            name = f"layers[{index}]" if index < self.n_hidden else "readout"
            _fits_signed(f"{name} weight", layer.weight, wb, "weight_bits")
            _fits_signed(f"{name} bias", layer.bias, bb, "bias_bits")
            x = int(np.abs(layer.weight).sum(axis=1).max()) + int(np.abs(layer.bias).max())
            bound = self.timesteps * x
            if isinstance(layer, HiddenLayerParams):
                bound += max(0, layer.reset - layer.threshold)
                bound = max(bound, layer.threshold, layer.reset)
            if bound.bit_length() + 1 > mb:
                raise ValueError(
                    f"{name} can reach a membrane of magnitude {bound}, which needs "
                    f"{bound.bit_length() + 1} signed bits: raise membrane_bits from {mb}"
                )

    # -- the names of docs/architecture.md -----------------------------------------------------

    @property
    def pes(self) -> int:
        """``P = R*C``, the processing elements."""
        return self.rows * self.cols

    @property
    def n_hidden(self) -> int:
        """``L``, the number of hidden layers; the readout is layer ``L``."""
        return len(self.layers)

    @property
    def all_layers(self) -> tuple:
        """The hidden layers, then the readout (index ``L``)."""
        return (*self.layers, self.readout)

    @property
    def n_ins(self) -> tuple[int, ...]:
        """``n_in`` of every layer, readout last."""
        return tuple(layer.n_in for layer in self.all_layers)

    @property
    def n_outs(self) -> tuple[int, ...]:
        """``n_out`` of every layer, readout (256) last."""
        return tuple(layer.n_out for layer in self.all_layers)

    @property
    def tiles(self) -> tuple[int, ...]:
        """``tiles_l = ceil(n_out_l / P)`` for every layer, readout last."""
        return tuple(-(-n // self.pes) for n in self.n_outs)

    @property
    def weight_bases(self) -> tuple[int, ...]:
        """``wbase_l``: first weight-bank address of layer ``l``."""
        sizes = [t * n for t, n in zip(self.tiles, self.n_ins, strict=True)]
        return tuple(int(x) for x in np.cumsum([0, *sizes[:-1]]))

    @property
    def bias_bases(self) -> tuple[int, ...]:
        """``bbase_l``: first bias-bank address of layer ``l``."""
        return tuple(int(x) for x in np.cumsum([0, *self.tiles[:-1]]))

    @property
    def weight_depth(self) -> int:
        """Rows of each weight bank: ``Σ_l tiles_l * n_in_l``."""
        return sum(t * n for t, n in zip(self.tiles, self.n_ins, strict=True))

    @property
    def bias_depth(self) -> int:
        """Rows of each bias bank: ``Σ_l tiles_l``."""
        return sum(self.tiles)

    @property
    def table_depth(self) -> int:
        """Rows of the spike table: ``256*T``."""
        return VOCAB * self.timesteps

    @property
    def spike_buffer_depth(self) -> int:
        """Rows of each spike bank: ``T * max_l tiles_l`` over the hidden layers."""
        return self.timesteps * max(self.tiles[: self.n_hidden])

    @property
    def logit_depth(self) -> int:
        """Rows of the logit memory: ``tiles_L * R``."""
        return self.tiles[-1] * self.rows

    @property
    def words(self) -> tuple[int, ...]:
        """Input words the scanner reads per time step of each layer."""
        return (self.context, *(-(-n // self.cols) for n in self.n_ins[1:]))

    @property
    def lanes(self) -> int:
        """Lanes of a scanner word: ``max(E, C)``."""
        return max(self.embed_dim, self.cols)

    @property
    def spike_counters(self) -> int:
        """Entries of ``spike_counts``: ``(L+1)*T``."""
        return (self.n_hidden + 1) * self.timesteps

    @property
    def spike_count_bits(self) -> int:
        """Width of each spike counter."""
        return SPIKE_COUNT_BITS

    @property
    def addr_bits(self) -> int:
        """Width of a token's bank address (weight or bias bank)."""
        return address_bits(max(self.weight_depth, self.bias_depth))

    @property
    def oaddr_bits(self) -> int:
        """Width of a token's output address (spike bank or logit memory)."""
        return address_bits(max(self.spike_buffer_depth, self.logit_depth))

    @property
    def raddr_bits(self) -> int:
        """Width of a scanner word read address (spike table or spike bank)."""
        return address_bits(max(self.table_depth, self.spike_buffer_depth))

    @property
    def count_bits(self) -> int:
        """Width of a spike-counter index."""
        return address_bits(self.spike_counters)

    def dense_cycles(self) -> int:
        """The dense count of docs/architecture.md, ``Σ_l tiles_l * T * (n_in_l + 1)``, drains
        not included."""
        return sum(
            t * self.timesteps * (n + 1) for t, n in zip(self.tiles, self.n_ins, strict=True)
        )
