"""Weight traffic: what a program reads from an external weight memory, and the fit decision.

With the weights off chip an EVENT needs one weight row (the ``P`` weights of its tile for one
input, ``R`` beats of the AXI4 port, ``AcceleratorParams.weight_row_bytes``), and the weight
fetch's row cache reads each once per token: the rows read per position follow the spikes, not
the layer sizes. :func:`weight_rows` counts them from the reference's spikes, one row per tile,
step and non-zero input spike (the fetch without its cache) and one per tile and input that
fired in any of the ``T`` steps (what the hardware reads, ``hw.Accelerator``'s
``weight_bursts``; docs/architecture.md, "Weights off chip").
"""

from __future__ import annotations

import numpy as np

from hw import AcceleratorParams, LayerKind

__all__ = ["WEIGHT_MODES", "memory_section", "weight_rows"]

WEIGHT_MODES = ("onchip", "offchip", "auto")
"""``rtl_gen build --weights``: in block RAM, in an external memory, or on chip when the
target's block RAM holds them."""


def weight_rows(p: AcceleratorParams, tensors: dict, ids: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per position ``[N, L]``: the weight rows an EVENT a row would read (an EMBED its row once
    per tile and step; a layer reading spikes once per tile, step and non-zero input spike)
    and the rows the accelerator reads, once per token (once per tile; once per tile and input
    that fired in any step). An encoder's position counts each layer once for every pass that
    runs it."""
    event = np.zeros(ids.shape, dtype=np.int64)
    once = np.zeros(ids.shape, dtype=np.int64)
    for index, (layer, tiles) in enumerate(zip(p.layers, p.tiles, strict=True)):
        runs = (p.runs_in_prefill(index) + p.runs_in_query(index)) if p.bidirectional else 1
        if layer.kind == LayerKind.EMBED:
            event += runs * tiles * p.timesteps
            once += runs * tiles
        elif layer.kind in (LayerKind.LINEAR, LayerKind.RESIDUAL, LayerKind.READOUT):
            fired = tensors[layer.source] != 0  # [N, T, L, n]
            event += runs * tiles * fired.sum(axis=(1, 3))
            once += runs * tiles * fired.any(axis=1).sum(axis=2)
    return event, once


def memory_section(p: AcceleratorParams, tensors: dict, ids: np.ndarray, *, streams: bool,
                   mode: str, latency: int, interval: int) -> dict:
    """``report.json``'s ``memory``: where the weights live and, per token (a position of a
    stream; a window's last position; an encoder's whole sequence), the bytes of weights the
    accelerator reads (once per token) and would read without its row cache (once per step),
    and the cycles the bus needs for them (bandwidth-bound: beats x interval; and what one
    burst at a time would take, the latency of each included: the weight fetch overlaps up to
    four). ``measured_cycles_per_token`` is filled in by ``rtl_gen sim``."""
    per_step, read = weight_rows(p, tensors, ids)
    if p.bidirectional:
        read, per_step = read.sum(axis=1), per_step.sum(axis=1)
    elif not streams:
        read, per_step = read[:, -1], per_step[:, -1]
    row = p.weight_row_bytes
    rows_read = float(read.mean())
    return {
        "weights": "offchip" if p.weights_offchip else "onchip",
        "requested": mode,
        "weight_bytes": int(p.weight_depth * row),
        "bus": {"protocol": "AXI4 read (AR, R), INCR bursts", "data_bits": p.bus_data_bits,
                "burst_beats": p.rows, "row_bytes": row},
        "model": {"latency_cycles": latency, "cycles_per_beat": interval,
                  "bytes_per_cycle": round(p.bus_beat_bytes / interval, 3)},
        "weight_rows_per_token": round(rows_read, 1),
        "bytes_per_token": round(rows_read * row, 1),
        "bytes_per_token_without_cache": round(float(per_step.mean()) * row, 1),
        "cache_rows": p.weight_cache_depth,
        "bandwidth_bound_cycles_per_token": round(rows_read * p.rows * interval, 1),
        "one_burst_at_a_time_cycles_per_token":
            round(rows_read * (latency + (p.rows - 1) * interval + 1), 1),
        "measured_cycles_per_token": None,
    }
