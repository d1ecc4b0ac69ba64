"""Data-parallel training: one process per rank under ``torchrun``, each with a share of every
batch.

``torchrun --nproc_per_node N -m model.train ...`` starts ``N`` processes with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set; :func:`process_group` starts the process group (gloo on
CPU, nccl for a CUDA device) and ends it. Training stays the single-process training of the
same global batch:

* Every rank draws the whole batch from the same seeded generator and keeps its own contiguous
  slice (:meth:`Ranks.shard`), so the data, and the position in it, do not depend on the
  number of processes; the batch must be a multiple of it, so that every share is the same
  size and a mean over the batch is the mean of the ranks' means.
* Gradients are averaged by ``DistributedDataParallel``; the statistics the model takes of its
  batch are averaged too (:meth:`Ranks.average`): the firing rates of the regulariser, the
  membranes a calibrated amplitude follows, and the LSQ gradient scale counts the whole batch
  (:class:`model.block.Flow`).
* Only rank 0 logs, evaluates and writes files.

Everything the ranks hold therefore stays identical, step after step. Against one process on
the same batch the sums run in another order, so the weights agree to float rounding, not bit
for bit (tests/model/test_model_parallel.py measures how closely).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from .errors import UsageError

__all__ = ["Ranks", "backend_for", "process_group", "unused_parameters"]

logger = logging.getLogger(__name__)


def backend_for(device: torch.device | str = "cpu") -> str:
    """The collective backend for a model on ``device``: nccl for CUDA, gloo otherwise."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


@dataclass(frozen=True)
class Ranks:
    """This process's place in a data-parallel run: ``rank`` of ``world`` processes (one
    process: rank 0 of 1, and every method is the identity)."""

    rank: int = 0
    world: int = 1

    @classmethod
    def current(cls) -> Ranks:
        """The ranks of the started process group, or a single process without one."""
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def main(self) -> bool:
        """Whether this process logs, evaluates and writes files (rank 0)."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world > 1

    def check_batch(self, batch: int) -> None:
        """Refuse a batch that does not split into equal shares."""
        if batch % self.world:
            raise UsageError(f"--batch {batch} does not split over {self.world} processes; give"
                             f" a multiple of {self.world}")

    def shard(self, tensor: torch.Tensor | None) -> torch.Tensor | None:
        """This rank's contiguous share of a global batch (rows ``rank * n / world`` on)."""
        if tensor is None or not self.parallel:
            return tensor
        share = tensor.shape[0] // self.world
        return tensor[self.rank * share : (self.rank + 1) * share]

    def average(self, tensor: torch.Tensor) -> torch.Tensor:
        """The mean of ``tensor`` over the ranks (a new tensor, without gradient)."""
        if not self.parallel:
            return tensor
        total = tensor.detach().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total / self.world

    def wrap(self, module: nn.Module, unused: bool = False) -> nn.Module:
        """``module`` in ``DistributedDataParallel`` (itself for one process); ``unused``: some
        of its trainable parameters get no gradient (DDP then looks for them every step)."""
        if not self.parallel:
            return module
        return nn.parallel.DistributedDataParallel(module, find_unused_parameters=unused)


def unused_parameters(model: nn.Module, ids: torch.Tensor) -> list[str]:
    """The trainable parameters of ``model`` no gradient reaches (ReLU attention's ``tau``,
    read by softmax attention only), found by back-propagating the outputs of one sample of
    ``ids`` in eval mode (which leaves calibrated amplitudes alone); gradients are cleared."""
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            logits, rates = model(ids[:1])
            sum([logits.sum(), *rates]).backward()
        unused = [name for name, p in model.named_parameters()
                  if p.requires_grad and p.grad is None]
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    logger.debug("parameters without gradient: %s", unused)
    return unused


@contextlib.contextmanager
def process_group(device: torch.device | str = "cpu") -> Iterator[Ranks]:
    """Start the process group when launched by ``torchrun`` with more than one process, and
    end it on the way out; yields this process's :class:`Ranks`."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or (dist.is_available() and dist.is_initialized()):
        yield Ranks.current()
        return
    if not dist.is_available():
        raise UsageError("this torch has no torch.distributed; run without torchrun")
    backend = backend_for(device)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    try:
        ranks = Ranks.current()
        if ranks.main:
            logger.info("data-parallel: %d processes, %s", ranks.world, backend)
        yield ranks
        # every rank is done before the group goes: a gloo rank that tears the group down
        # while rank 0 still writes its checkpoint can abort ("terminate called without an
        # active exception", seen once in CI after a resumed run)
        dist.barrier()
    finally:
        dist.destroy_process_group()
