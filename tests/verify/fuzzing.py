"""Random configurations for the fuzz tests: hypothesis strategies and the two profiles.

The quick profile runs in the default test suite (derandomized, so CI sees the same examples);
the extended one (``pytest --fuzz-extended`` or ``SPIKEFORGE_FUZZ=extended``) draws hundreds of
fresh configurations. A failing example is printed by hypothesis with its seed and shape, and
``print_blob`` gives the ``@reproduce_failure`` line.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
from hypothesis import HealthCheck, assume, settings
from hypothesis import strategies as st

from contract import IntModel
from contract.onnx_io import to_onnx
from contract.random_model import random_model
from contract.ranges import accumulation_bound, membrane_bound

EXTENDED = os.environ.get("SPIKEFORGE_FUZZ") == "extended"

#: Layer sizes: 1, 2 and primes (none of which a non-trivial array divides).
SIZES = (1, 2, 3, 5, 7, 11, 13, 17)

#: Threshold modes of a hidden layer: what random_model picks, and the extremes.
#: hair: Θ = R = 1 (fires on any non-zero membrane); overshoot: Θ = 1 with a large R (the
#: membrane swings past zero by R - Θ); edge: Θ = R = the layer's bound (fires only when the
#: membrane reaches its maximum); deaf: Θ one past the bound (can never fire).
MODES = ("plausible", "hair", "overshoot", "edge", "deaf")


def profile(quick: int, extended: int) -> settings:
    """Hypothesis settings with ``quick`` examples, or ``extended`` under the extended profile."""
    return settings(
        max_examples=extended if EXTENDED else quick,
        deadline=None,
        derandomize=not EXTENDED,
        print_blob=True,
        suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
    )


@dataclass(frozen=True)
class Config:
    """One fuzz configuration: a model, an array and the contexts it is run on."""

    seed: int
    model: IntModel
    modes: tuple[str, ...]
    rows: int
    cols: int
    dense: bool
    ids: np.ndarray

    def __repr__(self) -> str:
        m = self.model
        hidden = tuple(layer.n_out for layer in m.layers)
        return (
            f"Config(seed={self.seed}, context={m.context}, embed_dim={m.embed_dim},"
            f" hidden={hidden}, T={m.timesteps}, bits={m.weight_bits}, modes={self.modes},"
            f" array={self.rows}x{self.cols}, dense={self.dense})"
        )


def with_mode(model: IntModel, index: int, mode: str) -> IntModel:
    """``model`` with hidden layer ``index``'s threshold and reset set by ``mode``."""
    layer = model.layers[index]
    if mode == "plausible":
        return model
    if mode == "hair":
        new = replace(layer, threshold=1, reset=1)
    elif mode == "overshoot":
        one_step = membrane_bound(1, accumulation_bound(layer.weight), layer.bias, 1, 1)
        new = replace(layer, threshold=1, reset=max(1, one_step))
    else:
        bound = max(1, membrane_bound(model.timesteps, accumulation_bound(layer.weight),
                                      layer.bias, 1, 1))
        new = replace(layer, threshold=bound + (mode == "deaf"), reset=bound)
    layers = list(model.layers)
    layers[index] = new
    return replace(model, layers=tuple(layers))


@st.composite
def configs(draw, max_context: int = 3, max_embed: int = 4, max_layers: int = 3,
            samples: int = 2) -> Config:
    """A random model (sizes 1 and primes, T 1..8, 2/4/8-bit weights, extreme thresholds) on
    an array whose PE count divides none of its layers (256 included)."""
    seed = draw(st.integers(0, 2**32 - 1))
    hidden = tuple(draw(st.lists(st.sampled_from(SIZES), min_size=1, max_size=max_layers)))
    modes = tuple(draw(st.sampled_from(MODES)) for _ in hidden)
    rows, cols = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    pes = rows * cols
    assume(pes & (pes - 1) and all(n % pes for n in hidden))
    model = random_model(
        seed,
        context=draw(st.integers(1, max_context)),
        embed_dim=draw(st.integers(1, max_embed)),
        hidden=hidden,
        timesteps=draw(st.integers(1, 8)),
        weight_bits=draw(st.sampled_from([2, 4, 8])),
    )
    for index, mode in enumerate(modes):
        model = with_mode(model, index, mode)
    ids = np.random.default_rng(seed).integers(0, 256, size=(samples, model.context))
    return Config(seed, model, modes, rows, cols, draw(st.booleans()), ids)


def build_dir(config: Config, root: Path, stall_seed: int | None = None) -> Path:
    """``rtl_gen build`` (in process, the CLI's path) of ``config`` into ``root/build``."""
    from rtl_gen.build import BuildConfig, build

    root = Path(root)
    onnx.save(to_onnx(config.model), root / "m.onnx")
    np.savez(root / "inputs.npz", input=config.ids)
    out = root / "build"
    build(
        BuildConfig(
            out=out,
            onnx_path=root / "m.onnx",
            inputs=root / "inputs.npz",
            rows=config.rows,
            cols=config.cols,
            dense=config.dense,
            samples=len(config.ids),
            stall_seed=stall_seed,
        ),
        progress=lambda *_: None,
    )
    return out


def scratch() -> tempfile.TemporaryDirectory:
    """A temporary folder per hypothesis example (function-scoped fixtures are not reset)."""
    return tempfile.TemporaryDirectory(prefix="spikeforge-fuzz-")


@dataclass(frozen=True)
class Composition:
    """A random composition of the contract's ops and the streams it is run on."""

    seed: int
    kwargs: dict
    ids: np.ndarray

    def graph(self):
        from contract.random_model import random_graph

        return random_graph(self.seed, **self.kwargs)

    def __repr__(self) -> str:
        return f"Composition(seed={self.seed}, {self.kwargs}, ids {self.ids.shape})"


@st.composite
def compositions(draw) -> Composition:
    """Depth 1 to 4, widths 1, 2 and primes, heads 1 to 4, windows 1 to 32, T 1 to 8, 2/4/8-bit
    weights, blocks with and without attention or feed-forward, an embedding of spikes
    (optionally with attention over them) or of a residual, an optional spiking head, the
    plain neuron or the elastic one's options (per-step constants, leaks, binary spikes); a
    third of the compositions with attention are encoders (bidirectional attention, a
    classification readout pooled over the sequence)."""
    seed = draw(st.integers(0, 2**16))
    timesteps = draw(st.integers(1, 8))
    bits = draw(st.sampled_from([2, 4, 8]))
    heads = draw(st.integers(1, 4))
    window = draw(st.integers(1, 32))
    depth = draw(st.integers(1, 4))
    head = tuple(draw(st.lists(st.sampled_from(SIZES), max_size=2)))
    kwargs = {"timesteps": timesteps, "weight_bits": bits, "heads": heads, "window": window,
              "head": head}
    if draw(st.booleans()):
        kwargs |= {"embed": "token", "width": heads * draw(st.sampled_from((1, 2, 3, 5))),
                   "blocks": tuple(draw(st.lists(
                       st.tuples(st.booleans(), st.sampled_from((0, *SIZES))),
                       min_size=depth, max_size=depth)))}
    else:
        attention = draw(st.booleans())
        hidden = list(draw(st.lists(st.sampled_from(SIZES), min_size=depth, max_size=depth)))
        if attention:  # the attention's q, k, v keep the width of the last spiking layer
            hidden[-1] = heads * draw(st.sampled_from((1, 2, 3)))
        kwargs |= {"embed": "spike", "context": draw(st.integers(1, 5)),
                   "width": draw(st.sampled_from(SIZES[:5])), "hidden": tuple(hidden),
                   "spike_attention": attention}
    length = draw(st.integers(1, 2 * window + 2))
    kwargs["elastic"] = bool(seed % 2)  # from the seed: the draws stay what they were
    attends = kwargs.get("spike_attention") or any(a for a, _ in kwargs.get("blocks", ()))
    if attends and seed % 3 == 0:  # an encoder: bidirectional, pooled, at most a window long
        kwargs["classes"] = 2 + seed % 7
        length = min(length, window)
    ids = np.random.default_rng(seed).integers(0, 256, size=(6, length))
    return Composition(seed, kwargs, ids)
