"""SpikeForge's generator: ONNX -> typed IR -> passes -> hardware plan -> Amaranth -> Verilog."""

from .build import BuildConfig, build
from .errors import SpikeForgeError

__all__ = ["BuildConfig", "SpikeForgeError", "build"]
