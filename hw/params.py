"""The parameters of an accelerator build: a layer program over one array, validated once.

:class:`AcceleratorParams` is the only input of :class:`hw.Accelerator`. It holds the layers the
array runs one after the other (docs/architecture.md), each a :class:`XLayer` of plain integers
and NumPy arrays, the array shape and the register widths, and derives every number the
hardware and the memory images need: tiles, memory depths, bases, where each spike tensor lives.
It knows nothing of ONNX or of the contract (``rtl_gen.plan_program`` builds it from the
compiler's graph).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .checks import positive_int

__all__ = ["MAX_BURST", "SPIKE_COUNT_BITS", "VOCAB", "AcceleratorParams", "LayerKind", "Region",
           "XLayer", "address_bits", "int_array"]

logger = logging.getLogger(__name__)

VOCAB = 256
SPIKE_COUNT_BITS = 24

#: Cycles from a token entering an array row to its PEs acting (bank read, bank data register,
#: operand and neuron preparation): :class:`hw.row.ArrayRow`'s timing.
ACT_LATENCY = 3

#: Cycles from a RESADD entering a row to the first cycle in which a token entering the row
#: reads the residual it wrote (written ``ACT_LATENCY + 1`` cycles after it entered; a read in
#: that cycle reads the old word).
READ_AFTER_WRITE = ACT_LATENCY + 2

MAX_BURST = 256
"""Beats of the longest AXI4 INCR burst."""


def address_bits(depth: int) -> int:
    """Bits of an address into ``depth`` rows (at least 1)."""
    return max(1, (depth - 1).bit_length())


def int_array(name: str, value, shape: tuple) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers, not {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, not {arr.shape}")
    arr = arr.astype(np.int64)
    arr.setflags(write=False)
    return arr


class LayerKind(enum.IntEnum):
    """What one layer of the program does (docs/architecture.md, "The layer program")."""

    EMBED = 0  #: residual = the token's embedding row (weights ``[d, 256]``, one event)
    NORM = 1  #: spikes = IF(residual + B; Θ, R per channel)
    LINEAR = 2  #: spikes = IF(W s + B; Θ, R)
    ATTENTION = 3  #: spikes = IF(Σ_j relu(q.k_j + P) v_j; Θ, R per key count)
    RESIDUAL = 4  #: residual += shift(W s), or a per-step scale 2^a ± 2^b of it
    READOUT = 5  #: logits = Σ_t (W s + B)


def _int_array(name: str, value, ndim) -> np.ndarray:
    shape = np.shape(value)
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if len(shape) not in allowed:
        dims = " or ".join(map(str, allowed))
        raise ValueError(f"{name} must have {dims} dimensions, not shape {shape}")
    return int_array(name, value, shape)


#: the leak set of the plain neuron: every spike's multiplier is ``x 2^0``
IDENTITY_LEAK = np.broadcast_to(np.array([[1, 0], [0, 0]], dtype=np.int64), (3, 2, 2))


@dataclass(frozen=True, eq=False)
class XLayer:
    """One layer of the program.

    ``weight`` ``[n_out, n_in]`` (EMBED: the embedding transposed, ``[d, 256]``); ``bias``,
    ``threshold``, ``reset`` per output neuron, or ``[T, n_out]`` per step (ATTENTION:
    ``threshold``/``reset`` per key count, ``[W]`` or per step ``[T, W]``); ``leak``
    ``[T - 1, 3, 2, 2]``: the multiplier of the membrane after each step by the spike fired
    (``contract.ops.leak``'s terms, row ``s + 1``; READOUT: row 1), ``None`` the identity;
    ``binary``: no negative spikes; ``score_bias`` ``[H, W]`` or per step ``[T, H, W]``
    (ATTENTION); ``shift``, or ``scale`` ``[T, 2, 2]`` terms per step (RESIDUAL). ``source``
    names the spike tensor read (ATTENTION: the queries), ``keys``/``values`` the caches an
    ATTENTION reads, ``dest`` the spike tensor or cache written (NORM, LINEAR, ATTENTION).
    ``table``: a LINEAR layer that reads the spikes of the context bytes from the spike table
    (the program's ``SpikeEmbed``) instead of a spike tensor. ``causal=False`` (ATTENTION): an
    encoder's attention over every position of a sequence of at most ``W``, its score bias
    ``[H, 2W - 1]`` by signed distance ``i - j + W - 1``.
    """

    kind: LayerKind
    name: str
    n_out: int
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    threshold: np.ndarray | None = None
    reset: np.ndarray | None = None
    score_bias: np.ndarray | None = None
    shift: int = 0
    source: str | None = None
    keys: str | None = None
    values: str | None = None
    dest: str | None = None
    table: bool = False
    leak: np.ndarray | None = None
    binary: bool = False
    scale: np.ndarray | None = None
    causal: bool = True

    def __post_init__(self):
        object.__setattr__(self, "kind", LayerKind(self.kind))
        object.__setattr__(self, "causal", bool(self.causal))
        if not self.causal and self.kind != LayerKind.ATTENTION:
            raise ValueError(f"layer {self.name}: only an ATTENTION layer is bidirectional")
        if self.table and self.kind != LayerKind.LINEAR:
            raise ValueError(f"layer {self.name}: only a LINEAR layer reads the context table")
        object.__setattr__(self, "n_out", positive_int(f"{self.name} n_out", self.n_out))
        needs = {
            LayerKind.EMBED: ("weight",),
            LayerKind.NORM: ("bias", "threshold", "reset"),
            LayerKind.LINEAR: ("weight", "bias", "threshold", "reset"),
            LayerKind.ATTENTION: ("threshold", "reset", "score_bias"),
            LayerKind.RESIDUAL: ("weight",),
            LayerKind.READOUT: ("weight", "bias"),
        }[self.kind]
        for field in needs:
            if getattr(self, field) is None:
                raise ValueError(f"layer {self.name} ({self.kind.name}) needs {field}")
        per_neuron = self.kind in (LayerKind.NORM, LayerKind.LINEAR, LayerKind.READOUT)
        steps = (1, 2)
        for field, ndim in (("weight", 2), ("bias", steps), ("threshold", steps),
                            ("reset", steps), ("score_bias", (2, 3)), ("leak", 4),
                            ("scale", 3)):
            if getattr(self, field) is not None:
                object.__setattr__(self, field, _int_array(f"{self.name} {field}",
                                                           getattr(self, field), ndim))
        if self.weight is not None and self.weight.shape[0] != self.n_out:
            raise ValueError(f"layer {self.name}: weight must have {self.n_out} rows")
        for field in ("bias", "threshold", "reset"):
            value = getattr(self, field)
            if per_neuron and value is not None and value.shape[-1:] != (self.n_out,):
                raise ValueError(f"layer {self.name}: {field} must have {self.n_out} entries"
                                 " (per step: [T, n_out])")
        if self.threshold is not None and self.threshold.size and self.threshold.min() < 1:
            raise ValueError(f"layer {self.name}: every threshold must be at least 1")
        if self.reset is not None and self.reset.size and self.reset.min() < 0:
            raise ValueError(f"layer {self.name}: no reset may be negative")
        if (self.leak is not None or self.binary) and not (per_neuron or self.spiking):
            raise ValueError(f"layer {self.name}: only NORM, LINEAR, ATTENTION and READOUT"
                             " layers have a leak or binary spikes")
        if self.scale is not None and (self.kind != LayerKind.RESIDUAL or self.shift
                                       or self.scale.shape[1:] != (2, 2)
                                       or np.abs(self.scale[..., 0]).max(initial=0) > 1):
            raise ValueError(f"layer {self.name}: a per-step scale belongs to a RESIDUAL layer"
                             " without a shift, [T, 2, 2] terms (sign in -1..1, exponent)")
        if self.leak is not None and (self.leak.shape[1:] != (3, 2, 2)
                                      or np.abs(self.leak[..., 0]).max(initial=0) > 1):
            raise ValueError(f"layer {self.name}: the leak must be [T - 1, 3, 2, 2] terms"
                             " (sign in -1..1, exponent)")
        object.__setattr__(self, "binary", bool(self.binary))
        object.__setattr__(self, "shift", int(self.shift))

    @property
    def n_in(self) -> int:
        return 0 if self.weight is None else self.weight.shape[1]

    @property
    def spiking(self) -> bool:
        """Whether the layer's FIRE writes spikes (NORM, LINEAR, ATTENTION)."""
        return self.kind in (LayerKind.NORM, LayerKind.LINEAR, LayerKind.ATTENTION)

    @property
    def per_step(self) -> bool:
        """Whether the layer's constants have one row per time step."""
        return any(v is not None and v.ndim == 2
                   for v in (self.bias, self.threshold, self.reset))

    def constants_at(self, step: int) -> tuple[np.ndarray | None, ...]:
        """``(bias, threshold, reset)`` of step ``step`` (per neuron)."""
        return tuple(None if v is None else (v[step] if v.ndim == 2 else v)
                     for v in (self.bias, self.threshold, self.reset))


@dataclass(frozen=True)
class Region:
    """Where a spike tensor or cache lives: ``base`` address in its banks, ``tiles`` per step,
    ``slots`` cached positions (1 for a plain tensor), in the spike banks or the V banks."""

    base: int
    tiles: int
    slots: int
    v_bank: bool

    def address(self, timesteps: int, slot: int, step: int, tile: int) -> int:
        return self.base + (slot * timesteps + step) * self.tiles + tile


@dataclass(frozen=True, eq=False)
class AcceleratorParams:
    """Everything :class:`hw.Accelerator` is built from.

    ``layers`` run in order for every byte; the residual (``d_model`` channels per step) is
    in place, so a RESIDUAL updates what EMBED wrote. ``window`` ``W`` positions are cached for
    every ATTENTION's keys and values. Widths: ``weight_bits`` (the weight banks' lanes: the
    embedding is stored there too), ``bias_bits`` (signed),
    ``const_bits`` (thresholds and resets, unsigned), ``membrane_bits`` (every PE),
    ``residual_bits``, ``score_bits`` (a ReLU'd score, unsigned). ``weights_offchip``: the
    rows have no weight banks; every EVENT's weights come from an external memory through an
    AXI4 read port (docs/architecture.md, "Weights off chip").
    """

    rows: int
    cols: int
    timesteps: int
    window: int
    d_model: int
    heads: int
    layers: tuple[XLayer, ...]
    weight_bits: int
    bias_bits: int
    const_bits: int
    membrane_bits: int
    residual_bits: int
    score_bits: int
    spike_table: np.ndarray | None = None
    context: int = 1
    dense: bool = False
    weights_offchip: bool = False

    def __post_init__(self):
        for name in ("rows", "cols", "timesteps", "window", "d_model", "heads", "weight_bits",
                     "bias_bits", "const_bits", "membrane_bits", "residual_bits", "score_bits"):
            object.__setattr__(self, name, positive_int(name, getattr(self, name)))
        object.__setattr__(self, "layers", tuple(self.layers))
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} is not a multiple of heads {self.heads}")
        dh = self.head_dim
        if self.attentions and self.d_model > self.pes and self.pes % dh:
            raise ValueError(
                f"the array's {self.pes} PEs must hold whole heads of {dh} channels (or all"
                f" {self.d_model}): choose --rows x --cols a multiple of {dh}")
        object.__setattr__(self, "context", positive_int("context", self.context))
        if not isinstance(self.dense, bool):
            raise TypeError(f"dense must be a bool, not {self.dense!r}")
        if not isinstance(self.weights_offchip, bool):
            raise TypeError(f"weights_offchip must be a bool, not {self.weights_offchip!r}")
        if self.weights_offchip and self.rows > MAX_BURST:
            raise ValueError(f"weights off chip read a weight row as one AXI4 burst of a beat"
                             f" per array row: at most {MAX_BURST} rows, not {self.rows}")
        if self.spike_table is not None:
            table = int_array("spike_table", self.spike_table, np.shape(self.spike_table))
            if table.ndim != 3 or table.shape[:2] != (VOCAB, self.timesteps):
                raise ValueError(f"spike_table must be [256, {self.timesteps}, E]")
            object.__setattr__(self, "spike_table", table)
        kinds = [layer.kind for layer in self.layers]
        if kinds.count(LayerKind.EMBED) > 1 or (LayerKind.EMBED in kinds
                                                and kinds[0] != LayerKind.EMBED):
            raise ValueError("the program may have one EMBED layer, its first")
        if LayerKind.EMBED not in kinds and self.spike_table is None:
            raise ValueError("the program needs an EMBED layer or a spike table")
        if not self.has_residual and {LayerKind.NORM, LayerKind.RESIDUAL} & set(kinds):
            raise ValueError("a NORM or RESIDUAL layer needs the residual of an EMBED layer")
        if any(layer.table for layer in self.layers) and self.spike_table is None:
            raise ValueError("a layer reads the context table but there is no spike_table")
        if kinds.count(LayerKind.READOUT) != 1 or kinds[-1] != LayerKind.READOUT:
            raise ValueError("the program must end with its one READOUT layer")
        for layer in self.layers:
            if layer.table and layer.n_in != self.context * self.spike_table.shape[2]:
                raise ValueError(f"layer {layer.name} reads {self.context} bytes of"
                                 f" {self.spike_table.shape[2]} spikes, not {layer.n_in} inputs")
            if layer.kind in (LayerKind.EMBED, LayerKind.RESIDUAL, LayerKind.NORM,
                              LayerKind.ATTENTION) and layer.n_out != self.d_model:
                raise ValueError(f"layer {layer.name} must have {self.d_model} outputs")
            if layer.kind == LayerKind.READOUT and layer.n_out != VOCAB \
                    and not self.bidirectional:
                raise ValueError(f"the readout must have {VOCAB} outputs (an encoder's, with a"
                                 " bidirectional attention, 2 to 256)")
            if layer.kind == LayerKind.READOUT and not 2 <= layer.n_out <= VOCAB:
                raise ValueError(f"the readout must have 2 to {VOCAB} outputs")
            if layer.kind == LayerKind.ATTENTION:
                if layer.score_bias.shape[-2:] != (self.heads, self.distances) or (
                        layer.score_bias.ndim == 3
                        and layer.score_bias.shape[0] != self.timesteps):
                    raise ValueError(f"layer {layer.name}: score_bias must be"
                                     f" [{self.heads}, {self.distances}] (per step: [T, ...])")
                if layer.threshold.shape[-1:] != (self.window,) \
                        or layer.reset.shape[-1:] != (self.window,):
                    raise ValueError(f"layer {layer.name}: thresholds per key count need"
                                     f" {self.window} entries (per step: [T, W])")
            for field in ("bias", "threshold", "reset"):
                value = getattr(layer, field)
                if layer.per_step and value is not None and value.shape[0] != self.timesteps:
                    raise ValueError(f"layer {layer.name}: per-step {field} must have"
                                     f" {self.timesteps} rows")
            if layer.scale is not None and layer.scale.shape[0] != self.timesteps:
                raise ValueError(f"layer {layer.name}: the scale must have {self.timesteps}"
                                 " rows (one per step)")
            if layer.leak is not None and layer.leak.shape[0] != self.timesteps - 1:
                raise ValueError(f"layer {layer.name}: the leak must have {self.timesteps - 1}"
                                 " rows (one per step but the last)")
        if self.bidirectional and (self.attentions != 1 or self.spike_table is not None):
            raise ValueError("an encoder program has one bidirectional ATTENTION layer over a"
                             " residual stream (an EMBED layer)")
        self.regions  # noqa: B018 -- allocate (and check) the spike tensors now
        self._check_widths()
        logger.debug("accelerator %dx%d, %d layers", self.rows, self.cols,
                     len(self.layers))

    # -- shape --------------------------------------------------------------------------------

    @property
    def pes(self) -> int:
        return self.rows * self.cols

    @property
    def head_dim(self) -> int:
        return self.d_model // self.heads

    def tiles_of(self, n: int) -> int:
        """``ceil(n / P)``."""
        return -(-n // self.pes)

    @property
    def model_tiles(self) -> int:
        """Tiles of ``d_model`` channels (residual, norms, attention)."""
        return self.tiles_of(self.d_model)

    @property
    def tiles(self) -> tuple[int, ...]:
        return tuple(self.tiles_of(layer.n_out) for layer in self.layers)

    @property
    def heads_per_tile(self) -> int:
        """Heads whose channels a tile holds (whole heads: see the constructor's check)."""
        return -(-min(self.d_model, self.pes) // self.head_dim)

    def head_of_lane(self, row: int, col: int) -> int:
        """Head (within its tile) of the channel PE ``(row, col)`` holds."""
        lane = row * self.cols + col
        return min(lane // self.head_dim, self.heads_per_tile - 1)

    # -- where everything lives ---------------------------------------------------------------

    @cached_property
    def regions(self) -> dict[str, Region]:
        """Every spike tensor and cache: plain tensors and key caches in the spike banks, value
        caches in the V banks; each written by one layer and read after it."""
        written: dict[str, XLayer] = {}
        for layer in self.layers:
            for name in (None if layer.table else layer.source, layer.keys, layer.values):
                if name is not None and name not in written:
                    raise ValueError(f"layer {layer.name} reads {name} before a layer writes it")
            if layer.spiking:
                if layer.dest is None:
                    raise ValueError(f"layer {layer.name} writes no spike tensor (dest)")
                if layer.dest in written:
                    raise ValueError(f"spike tensor {layer.dest} is written twice")
                written[layer.dest] = layer
        keys = {layer.keys for layer in self.layers if layer.keys}
        values = {layer.values for layer in self.layers if layer.values}
        if keys & values:
            raise ValueError(f"{sorted(keys & values)} is read as keys and as values")
        out, spike_top, v_top = {}, 0, 0
        for name, layer in written.items():
            tiles = self.tiles_of(layer.n_out)
            if name in values:
                out[name] = Region(v_top, tiles, self.window, True)
                v_top += self.window * self.timesteps * tiles
            else:
                slots = self.window if name in keys else 1
                out[name] = Region(spike_top, tiles, slots, False)
                spike_top += slots * self.timesteps * tiles
        for layer in self.layers:
            if layer.values and layer.keys and out[layer.keys].tiles != out[layer.values].tiles:
                raise ValueError(f"layer {layer.name}: keys and values differ in width")
        object.__setattr__(self, "_spike_depth", max(1, spike_top))
        object.__setattr__(self, "_v_depth", max(1, v_top))
        return out

    def words(self, index: int) -> int:
        """The word requests of layer ``index`` per tile and step: the input's words of ``C``
        lanes (a LINEAR of the spike table: one per context byte; EMBED, NORM, ATTENTION: 1)."""
        layer = self.layers[index]
        if layer.table:
            return self.context
        if layer.kind in (LayerKind.LINEAR, LayerKind.RESIDUAL, LayerKind.READOUT):
            return -(-layer.n_in // self.cols)
        return 1

    @cached_property
    def overlaps(self) -> tuple[bool, ...]:
        """Per layer, whether the next layer starts at once, without waiting for this one to
        leave the pipeline (:func:`_overlaps`)."""
        return _overlaps(self)

    @property
    def overlapping(self) -> bool:
        """Whether tokens of two layers may share the pipeline: then every token carries its
        layer (:func:`hw.token.token_layout`)."""
        return any(self.overlaps)

    @property
    def spike_depth(self) -> int:
        """Rows of each spike bank (plain tensors and key caches)."""
        return self._spike_depth

    @property
    def v_depth(self) -> int:
        """Rows of each V bank (value caches)."""
        return self._v_depth

    @property
    def weight_bases(self) -> tuple[int, ...]:
        sizes = [t * layer.n_in for t, layer in zip(self.tiles, self.layers, strict=True)]
        return tuple(int(x) for x in np.cumsum([0, *sizes[:-1]]))

    @property
    def weight_depth(self) -> int:
        return max(1, sum(t * layer.n_in for t, layer in zip(self.tiles, self.layers,
                                                            strict=True)))

    def const_entries(self, layer: XLayer) -> int:
        """Constant-bank rows of a layer: a tile each (ATTENTION: a tile per key count; per-step
        constants: a tile per step)."""
        if layer.kind in (LayerKind.EMBED, LayerKind.RESIDUAL):
            return 0
        tiles = self.tiles_of(layer.n_out)
        steps = self.timesteps if layer.per_step else 1
        if layer.kind == LayerKind.ATTENTION:
            return tiles * self.window * steps
        return tiles * steps

    @cached_property
    def leak_sets(self) -> tuple[np.ndarray, ...]:
        """The ``[3, 2, 2]`` leak multipliers a FIRE token can select (its ``leak`` field): the
        identity first, then every leaky layer's, step by step."""
        sets = [IDENTITY_LEAK]
        for layer in self.layers:
            if layer.leak is not None:
                sets += list(layer.leak)
        return tuple(np.asarray(s) for s in sets)

    @property
    def leak_bases(self) -> tuple[int, ...]:
        """Per layer, the index of its step 0 in :attr:`leak_sets` (0: no leak)."""
        bases, top = [], 1
        for layer in self.layers:
            bases.append(top if layer.leak is not None else 0)
            top += 0 if layer.leak is None else self.timesteps - 1
        return tuple(bases)

    @property
    def leaky(self) -> bool:
        """Whether a layer rescales its membranes between steps (the lanes' leak unit)."""
        return len(self.leak_sets) > 1

    @property
    def leak_exponents(self) -> tuple[int, ...]:
        """The distinct exponents of the leak terms (0 first): the lanes' shift mux."""
        found = [0]
        for terms in self.leak_sets:
            for sign, e in terms.reshape(-1, 2):
                if sign and int(e) not in found:
                    found.append(int(e))
        return tuple(found)

    @property
    def const_bases(self) -> tuple[int, ...]:
        sizes = [self.const_entries(layer) for layer in self.layers]
        return tuple(int(x) for x in np.cumsum([0, *sizes[:-1]]))

    @property
    def const_depth(self) -> int:
        return max(1, sum(self.const_entries(layer) for layer in self.layers))

    @property
    def residual_depth(self) -> int:
        """Rows of each residual bank: ``T`` steps of ``model_tiles``."""
        return self.timesteps * self.model_tiles

    @property
    def logit_depth(self) -> int:
        return self.tiles[-1] * self.rows

    @property
    def shifts(self) -> tuple[int, ...]:
        """The distinct shifts of the RESIDUAL layers (EMBED's 0 first): the RESADD mux."""
        found = [0]
        for layer in self.layers:
            if layer.kind == LayerKind.RESIDUAL and layer.shift not in found:
                found.append(layer.shift)
        return tuple(found)

    @property
    def scaled(self) -> bool:
        """Whether a RESIDUAL layer scales per step (the rows' two-term RESADD scale unit
        instead of the one shift mux)."""
        return any(layer.scale is not None for layer in self.layers)

    @cached_property
    def scale_sets(self) -> tuple[np.ndarray, ...]:
        """The ``[2, 2]`` terms a RESADD token can select (its ``scale`` field) in a
        :attr:`scaled` program: EMBED's identity first, then per RESIDUAL layer its one shift
        or its terms step by step."""
        sets = [IDENTITY_LEAK[0]]
        for layer in self.layers:
            if layer.kind != LayerKind.RESIDUAL:
                continue
            if layer.scale is None:
                sets.append(np.array([[1, layer.shift], [0, 0]], dtype=np.int64))
            else:
                sets += list(layer.scale)
        return tuple(np.asarray(s) for s in sets)

    @property
    def scale_bases(self) -> tuple[int, ...]:
        """Per layer, the index of its (step 0) set in :attr:`scale_sets` (0: EMBED and every
        layer that does not add to the residual)."""
        bases, top = [], 1
        for layer in self.layers:
            bases.append(top if layer.kind == LayerKind.RESIDUAL else 0)
            if layer.kind == LayerKind.RESIDUAL:
                top += 1 if layer.scale is None else self.timesteps
        return tuple(bases)

    @property
    def scale_exponents(self) -> tuple[int, ...]:
        """The distinct exponents of the scale terms (0 first): the rows' shift muxes."""
        found = [0]
        for terms in self.scale_sets:
            for sign, e in terms:
                if sign and int(e) not in found:
                    found.append(int(e))
        return tuple(found)

    @property
    def score_per_step(self) -> bool:
        """Whether an ATTENTION's score bias changes over time: the bias ROM holds a block of
        rows per step for every attention layer."""
        return any(layer.kind == LayerKind.ATTENTION and layer.score_bias.ndim == 3
                   for layer in self.layers)

    @property
    def has_residual(self) -> bool:
        """Whether the program has a residual stream (an EMBED layer): residual banks."""
        return any(layer.kind == LayerKind.EMBED for layer in self.layers)

    @property
    def embed_dim(self) -> int:
        """Spikes per context byte and step of the spike table (0 without one)."""
        return 0 if self.spike_table is None else self.spike_table.shape[2]

    @property
    def lanes(self) -> int:
        """Lanes of a scanner word: ``max(C, E)`` (a spike-table word holds a context byte's
        ``E`` spikes of one step, a spike-bank word ``C``)."""
        return max(self.cols, self.embed_dim)

    @property
    def table_row_bits(self) -> int:
        """Low address bits of the spike table: step ``t`` below ``2^bits``."""
        return address_bits(self.timesteps)

    @property
    def table_depth(self) -> int:
        """Rows of the spike table ROM: byte ``b`` at ``b << table_row_bits`` (0 without one)."""
        return 0 if self.spike_table is None else VOCAB << self.table_row_bits

    @property
    def bidirectional(self) -> bool:
        """Whether the program is an encoder's: its attention reads every position of the
        sequence, which runs twice (docs/architecture.md, "The encoder")."""
        return any(layer.kind == LayerKind.ATTENTION and not layer.causal
                   for layer in self.layers)

    @property
    def distances(self) -> int:
        """Score biases per head: one per distance ``0..W-1``, or per signed distance
        ``-(W-1)..W-1`` (``2W - 1``) in an encoder's program."""
        return 2 * self.window - 1 if self.bidirectional else self.window

    @property
    def outputs(self) -> int:
        """Logits per inference: the READOUT's outputs (256 bytes, or an encoder's classes)."""
        return self.layers[-1].n_out

    def runs_in_prefill(self, index: int) -> bool:
        """Whether layer ``index`` runs on a byte of an encoder's first pass: the layers before
        its attention, which lead to the keys and values of every position, but the one that
        writes its queries (read only by the second pass)."""
        first, attention = next((i, layer) for i, layer in enumerate(self.layers)
                                if layer.kind == LayerKind.ATTENTION)
        dest = self.layers[index].dest
        queries_only = dest == attention.source and dest not in (attention.keys,
                                                                 attention.values)
        return index < first and not queries_only

    def runs_in_query(self, index: int) -> bool:
        """Whether layer ``index`` runs on a byte of an encoder's second pass: every layer but
        those that write the key and value caches (filled by the first pass)."""
        caches = {name for layer in self.layers for name in (layer.keys, layer.values) if name}
        return self.layers[index].dest not in caches

    @property
    def attentions(self) -> int:
        """ATTENTION layers of the program; without one the accelerator has no score unit and
        no value caches."""
        return sum(layer.kind == LayerKind.ATTENTION for layer in self.layers)

    @property
    def spiking_layers(self) -> tuple[int, ...]:
        """Indices of the layers that write spikes, in order: the spike counters' order."""
        return tuple(i for i, layer in enumerate(self.layers) if layer.spiking)

    @property
    def addr_bits(self) -> int:
        """A token's ``addr``: weight, constant, residual or V-bank address."""
        return address_bits(max(self.weight_depth, self.const_depth, self.residual_depth,
                                self.v_depth))

    @property
    def oaddr_bits(self) -> int:
        """A token's ``oaddr``: spike bank, V bank or logit memory."""
        return address_bits(max(self.spike_depth, self.v_depth, self.logit_depth))

    @property
    def raddr_bits(self) -> int:
        """A word fetch's read address: a spike bank's, or the spike table's."""
        return address_bits(max(self.spike_depth, self.table_depth))

    @property
    def operand_bits(self) -> int:
        """The PE operand: a weight, a bias, a residual value or a score (signed)."""
        return max(self.weight_bits, self.bias_bits, self.residual_bits, self.score_bits + 1)

    # -- the external weight memory (weights off chip) ----------------------------------------

    @property
    def bus_data_bits(self) -> int:
        """Data width of the AXI4 weight port: a row's ``C`` weights, rounded up to a power of
        two of at least 8 bits (one beat per array row)."""
        return max(8, 1 << (self.cols * self.weight_bits - 1).bit_length())

    @property
    def bus_beat_bytes(self) -> int:
        return self.bus_data_bits // 8

    @property
    def weight_row_bytes(self) -> int:
        """Bytes of one weight row (an EVENT's ``P`` weights): one burst of ``R`` beats."""
        return self.rows * self.bus_beat_bytes

    @property
    def weight_cache_depth(self) -> int:
        """Rows of the weight fetch's row cache (weights off chip): the widest layer's inputs,
        rounded up to a power of two, so that a tile's rows never evict each other. An EMBED
        reads one row a tile (its byte's), which no other row of the tile can evict."""
        widest = max((layer.n_in for layer in self.layers if layer.kind != LayerKind.EMBED),
                     default=1)
        return 1 << (max(widest, 1) - 1).bit_length()

    @property
    def bus_addr_bits(self) -> int:
        """Byte-address width of the AXI4 weight port: the whole external weight image."""
        return address_bits(self.weight_depth * self.weight_row_bytes)

    # -- checks -------------------------------------------------------------------------------

    def _check_widths(self):
        def fits(name, arr, bits, signed, width_name):
            lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
            if arr is not None and arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
                raise ValueError(f"{name} spans [{int(arr.min())}, {int(arr.max())}], beyond"
                                 f" {bits} bits: raise {width_name}")

        for layer in self.layers:
            fits(f"{layer.name} weight", layer.weight, self.weight_bits, True, "weight_bits")
            fits(f"{layer.name} bias", layer.bias, self.bias_bits, True, "bias_bits")
            fits(f"{layer.name} threshold", layer.threshold, self.const_bits, False, "const_bits")
            fits(f"{layer.name} reset", layer.reset, self.const_bits, False, "const_bits")
        if self.const_bits > self.membrane_bits - 1:
            raise ValueError(f"const_bits ({self.const_bits}) must be below membrane_bits"
                             f" ({self.membrane_bits})")
        if self.operand_bits > self.membrane_bits:
            raise ValueError(f"operands of {self.operand_bits} bits do not fit membranes of"
                             f" {self.membrane_bits}")
        if self.residual_bits > self.membrane_bits:
            raise ValueError("residual_bits must not exceed membrane_bits")


def _overlaps(p: AcceleratorParams) -> tuple[bool, ...]:
    """Per layer, whether the next layer may start while this one's tokens (and those of the
    layers that started the same way before it) are still in the pipeline, instead of after
    the drain.

    The next layer may start unless

    - either is an ATTENTION (the score unit reads the banks, and its FIRE comes late);
    - it reads a spike tensor or cache that one of those layers writes (the word fetch would
      read it before the FIRE has written it);
    - it reads the residual (a NORM's RESID, a RESIDUAL's RESADD) fewer than
      :data:`READ_AFTER_WRITE` cycles, at the least, after one of those layers' RESADD to the
      same tile and step;
    - an encoder's pass runs the layer but not the next (it would then skip to a later one).

    Tokens reach the array in order, one a cycle at most; what a tile and step of a layer
    sends is at least its FIRE, RESID, RESADD or an embedding's one EVENT each one cycle, and
    each word one cycle (the scanner spends one on a word without a spike; not with the
    weights off chip, whose FIFO closes those gaps)."""
    layers = p.layers
    word_cycles = 0 if p.weights_offchip else 1
    steps = p.timesteps

    def per_step(index):  # the cycles that tile and step sends at the least: (before, all)
        layer = layers[index]
        sent = 1 if layer.kind == LayerKind.EMBED else p.words(index) * word_cycles
        if layer.kind == LayerKind.NORM:
            return 0, 2  # RESID (the read) and FIRE
        return sent, sent + 1  # the words and the tail: the read or write is the tail

    def residual(layer):  # (reads it, writes it)
        kind = layer.kind
        return kind in (LayerKind.NORM, LayerKind.RESIDUAL), kind in (LayerKind.EMBED,
                                                                   LayerKind.RESIDUAL)

    result = [False] * len(layers)
    chain = [0]  # the layers whose tokens may still be in the pipeline
    for index in range(len(layers) - 1):
        nxt = layers[index + 1]
        ok = LayerKind.ATTENTION not in (layers[index].kind, nxt.kind)
        reads = {None if nxt.table else nxt.source, nxt.keys, nxt.values} - {None}
        ok = ok and not reads & {layers[j].dest for j in chain}
        if p.bidirectional:
            ok = ok and all(runs(index + 1) or not runs(index)
                            for runs in (p.runs_in_prefill, p.runs_in_query))
        if ok and residual(nxt)[0]:
            for j in (j for j in chain if residual(layers[j])[1]):
                cycles = p.tiles[j] * steps
                if p.tiles[index + 1] != p.tiles[j]:
                    ok = False
                    break
                between = sum(p.tiles[b] * steps * per_step(b)[1]
                              for b in chain if b > j)
                before, every = per_step(index + 1)
                # first and last tile and step: the distance is linear in between
                gaps = [(cycles - 1 - k) * per_step(j)[1] + between + k * every + before + 1
                        for k in (0, cycles - 1)]
                ok = ok and min(gaps) >= READ_AFTER_WRITE
        result[index] = ok
        chain = [*chain, index + 1] if ok else [index + 1]
    return tuple(result)
