"""The synthesis top: the accelerator with few pins, for place and route on a real package.

The simulation harness exposes every logit at once, far more pins than any FPGA package has.
This top keeps the token streams and reads the status (the cycle counter and the spike
counters) through a byte-wide register port, so nothing is trimmed away by synthesis and the
design fits the 39 user I/Os of an iCE40 UP5K in its SG48 package:

- ``tokens`` (in) and ``next_token`` (out): the accelerator's streams, each through a
  register slice (``hw.SkidBuffer``: a cycle of latency, outside the accelerator's cycles);
- ``status_addr`` (in) selects byte ``a`` of ``cycles`` (bytes 0..3, little endian) followed by
  the spike counters (3 bytes each); ``status_data`` (out) is that byte, one cycle later.

The logits stream is drained internally (always ready) and its data goes nowhere, so synthesis
keeps no logit memory: this top is a token generator, and the arg-max is taken as the logits
are written (``hw.streamer.OutputStreamer``). With ``logits=True`` the stream is a port
instead (``logits``, after each ``next_token``), for a top that sends them on (a board's UART
bridge).
"""

from __future__ import annotations

from amaranth import Module, Signal, Value, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .accelerator import Accelerator
from .axi import axi_read_signature
from .params import SPIKE_COUNT_BITS, AcceleratorParams
from .sequencer import BEAT_BITS
from .skid import SkidBuffer

__all__ = ["SynthTop"]


class SynthTop(wiring.Component):
    """:class:`hw.Accelerator` (whose token beats carry a restart flag in bit 8, a hold flag
    in bit 9 and an encoder's prefill flag in bit 10) behind a pin-frugal interface (see the
    module docstring); ``logits``: the accelerator's logits stream as a port."""

    def __init__(self, params: AcceleratorParams, *, logits: bool = False):
        if not isinstance(params, AcceleratorParams):
            raise TypeError(f"params must be an AcceleratorParams, not {params!r}")
        counters = len(params.spiking_layers)
        self._params = params
        self._counters = counters
        status_bytes = 4 + counters * ((SPIKE_COUNT_BITS + 7) // 8)
        self._status_bytes = status_bytes
        self._logits = bool(logits)
        super().__init__({
            **({"logits": Out(stream.Signature(signed(params.membrane_bits)))}
               if logits else {}),
            "tokens": In(stream.Signature(BEAT_BITS)),
            "next_token": Out(stream.Signature(8)),
            "status_addr": In(max(1, (status_bytes - 1).bit_length())),
            "status_data": Out(8),
            # weights off chip: the external memory's AXI4 read port, on pins
            **({"weight_bus": Out(axi_read_signature(params.bus_addr_bits,
                                                     params.bus_data_bits))}
               if params.weights_offchip else {}),
        })

    @property
    def params(self) -> AcceleratorParams:
        return self._params

    @property
    def status_bytes(self) -> int:
        """Bytes behind ``status_addr``."""
        return self._status_bytes

    def elaborate(self, platform):
        m = Module()
        m.submodules.accelerator = acc = Accelerator(self._params)
        # Every stream crosses the boundary through a register slice, so that no path runs
        # from a pin (or a UART bridge) into the accelerator's handshakes: on the iCE40 the
        # placer pulled the next token's handshake towards its pin, 22 ns from pin to the
        # streamer's registers.
        m.submodules.tokens_in = tokens_in = SkidBuffer(self.tokens.payload.shape())
        wiring.connect(m, wiring.flipped(self.tokens), tokens_in.i)
        wiring.connect(m, tokens_in.o, acc.tokens)
        outs = [("next_token", acc.next_token, self.next_token)]
        if self._logits:
            outs.append(("logits", acc.logits, self.logits))
        for name, source, port in outs:
            m.submodules[f"{name}_out"] = skid = SkidBuffer(source.payload.shape())
            wiring.connect(m, source, skid.i)
            wiring.connect(m, skid.o, wiring.flipped(port))
        if not self._logits:
            m.d.comb += acc.logits.ready.eq(1)
        if self._params.weights_offchip:
            wiring.connect(m, acc.weight_bus, wiring.flipped(self.weight_bus))

        counter_bytes = (SPIKE_COUNT_BITS + 7) // 8
        fields = [acc.cycles[8 * b:8 * (b + 1)] for b in range(4)]
        for index in range(self._counters):
            counter = acc.spike_counts[index]
            fields += [Value.cast(counter)[8 * b:8 * (b + 1)] for b in range(counter_bytes)]
        data = Signal(8)
        with m.Switch(self.status_addr):
            for addr, field in enumerate(fields):
                with m.Case(addr):
                    m.d.sync += data.eq(field)
            with m.Default():
                m.d.sync += data.eq(0)
        m.d.comb += self.status_data.eq(data)
        return m
