"""Weight traffic: what a program reads from an external weight memory, and the fit decision.

With the weights off chip every EVENT reads one weight row (the ``P`` weights of its tile for
one input, ``R`` beats of the AXI4 port, ``AcceleratorParams.weight_row_bytes``): the rows
read per position follow the spikes, not the layer sizes. :func:`weight_rows` counts them from
the reference's spikes for today's schedule (one row per tile, step and non-zero input spike,
``hw.Accelerator``'s ``weight_bursts``) and for the schedule of one fetch per token (one row
per tile and input that fired in any of the ``T`` steps, applied to every step it fired in;
docs/architecture.md, "Weights off chip").
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
    """Per position ``[N, L]``: the weight rows read by the schedule of the accelerator (an
    EMBED reads its row once per tile and step; a layer reading spikes once per tile, step and
    non-zero input spike) and by one fetch per token (once per tile; once per tile and input
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
    stream; a window's last position; an encoder's whole sequence), the bytes of weights read
    by today's schedule and by one fetch per token, and the cycles the bus needs for them
    (bandwidth-bound: beats x interval; and what one burst at a time would take, the latency
    of each included: the weight fetch overlaps up to four). ``measured_cycles_per_token`` is
    filled in by ``rtl_gen sim``."""
    event, once = weight_rows(p, tensors, ids)
    if p.bidirectional:
        event, once = event.sum(axis=1), once.sum(axis=1)
    elif not streams:
        event, once = event[:, -1], once[:, -1]
    row = p.weight_row_bytes
    rows_event = float(event.mean())
    return {
        "weights": "offchip" if p.weights_offchip else "onchip",
        "requested": mode,
        "weight_bytes": int(p.weight_depth * row),
        "bus": {"protocol": "AXI4 read (AR, R), INCR bursts", "data_bits": p.bus_data_bits,
                "burst_beats": p.rows, "row_bytes": row},
        "model": {"latency_cycles": latency, "cycles_per_beat": interval,
                  "bytes_per_cycle": round(p.bus_beat_bytes / interval, 3)},
        "weight_rows_per_token": round(rows_event, 1),
        "bytes_per_token": round(rows_event * row, 1),
        "bytes_per_token_once_per_token": round(float(once.mean()) * row, 1),
        "bandwidth_bound_cycles_per_token": round(rows_event * p.rows * interval, 1),
        "one_burst_at_a_time_cycles_per_token":
            round(rows_event * (latency + (p.rows - 1) * interval + 1), 1),
        "measured_cycles_per_token": None,
    }
