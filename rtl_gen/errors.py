"""Errors the user can act on. The CLI prints their message on one line and exits with 2."""

__all__ = [
    "BuildError",
    "FrontendError",
    "NotABuildError",
    "SpikeForgeError",
    "TargetFitError",
    "UnsupportedOpError",
    "VerificationError",
]


class SpikeForgeError(Exception):
    """Base class: the message says what to change."""


class FrontendError(SpikeForgeError):
    """The ONNX file is not a model this generator understands."""


class UnsupportedOpError(FrontendError):
    """The ONNX graph holds an op the generator has no handler for."""

    def __init__(self, op_type: str, domain: str, node_name: str, supported=None):
        qualified = f"{domain}.{op_type}" if domain else op_type
        names = [op for _, op in supported] if supported else [
            "SpikeEmbed", "TokenEmbed", "SpikeAccumulate", "TernaryIF", "SpikeAttention",
            "ResidualAdd", "SpikeReadout"]
        listed = ", ".join(names[:-1]) + f" and {names[-1]}"
        super().__init__(
            f"unsupported ONNX op {qualified} (node {node_name or '<unnamed>'}): SpikeForge "
            f"lowers spikeforge.{listed} only; export the model with `python -m model.export`"
        )
        self.op_type = op_type
        self.node_name = node_name


class TargetFitError(SpikeForgeError):
    """The model does not fit the chosen FPGA."""


class BuildError(SpikeForgeError):
    """A build step failed (a tool, an input, a folder)."""


class NotABuildError(SpikeForgeError):
    """A folder given to ``sim`` or ``synth`` is not a finished ``build`` output."""


class VerificationError(SpikeForgeError):
    """Two layers of the flow disagree on the integers: a bit-exactness failure."""
