"""Data-parallel training on `torch.distributed`: N processes, each with a slice of every global
batch, that together compute what one process computes on the whole batch.

    hwgen train NAME --nproc N ...                      N local processes (gloo on CPU, NCCL on GPUs)
    torchrun --nproc-per-node N -m hwgen.train NAME ... the same, launched by torchrun

What makes N processes equal one:
- every process draws the same order and augmentation from the same generator and takes rows
  [r B/N, (r+1) B/N) of each global batch of B (B a multiple of N);
- BatchNorm normalizes by the statistics of the global batch (`SyncBatchNorm2d`: the per-channel
  sums travel by an autograd-aware all-reduce, so the gradient through the statistics is the
  global one too);
- the gradients are summed over the processes and divided by N: each process' loss is the mean
  over its B/N rows, so that is the gradient of the mean over all B.
What is left is the order of floating-point sums (an all-reduce adds the processes' partial sums,
one process adds the rows in one go): weights agree to float32 rounding, not bit for bit. Adam
magnifies one case: a parameter whose gradient is zero but for rounding moves by +-lr with the
rounding's sign, so runs whose first steps have such gradients (real-valued weights before
BatchNorm: two-step training's step 1, Bi-Real's pre-training) part by 2 lr in those parameters.

torch's own `nn.SyncBatchNorm` runs on GPUs only; `SyncBatchNorm1d`/`2d` are BatchNorm1d/2d with the
same parameters and buffers (a checkpoint loads into either) that synchronize on any backend.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.nn.functional import all_reduce as differentiable_all_reduce

from hwgen.errors import HwgenError


@dataclass(frozen=True)
class Process:
    """This process' place in a data-parallel run: `rank` of `world` processes, `local_rank` on
    this machine (the GPU it uses, where there are GPUs)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def leader(self) -> bool:
        """The process that writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def shard(self, batch: int) -> slice:
        """This process' rows of a global batch of `batch` rows."""
        per = batch // self.world
        return slice(self.rank * per, (self.rank + 1) * per)

    def device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if torch.cuda.is_available() else torch.device("cpu")


SINGLE = Process()


def backend() -> str:
    return "nccl" if torch.cuda.is_available() else "gloo"


class _SynchronizedBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm that, in training and in a distributed run, normalizes by the mean and the
    (biased) variance of the global batch and keeps running statistics of it, as one process with
    the whole batch does; otherwise it is plain BatchNorm. Two all-reduces per call: the sum, then
    the sum of squared deviations from the global mean (as precise as one process' two-pass
    variance)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = (0, *range(2, x.dim()))
        shape = (1, -1) + (1,) * (x.dim() - 2)
        count = torch.tensor([x.numel() // x.shape[1]], dtype=x.dtype, device=x.device)
        totals = differentiable_all_reduce(torch.cat([x.sum(dims), count]))
        n = totals[-1]
        mean = totals[:-1] / n
        centred = x - mean.view(shape)
        var = differentiable_all_reduce((centred * centred).sum(dims)) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1)), alpha=m)
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


class SyncBatchNorm1d(_SynchronizedBatchNorm, nn.BatchNorm1d):
    pass


class SyncBatchNorm2d(_SynchronizedBatchNorm, nn.BatchNorm2d):
    pass


_SYNCHRONIZED = {nn.BatchNorm1d: SyncBatchNorm1d, nn.BatchNorm2d: SyncBatchNorm2d}
_PLAIN = {v: k for k, v in _SYNCHRONIZED.items()}


def synchronize_batchnorm(model: nn.Module) -> nn.Module:
    """`model` with every BatchNorm1d/2d made its synchronized twin in place (the same parameters
    and buffers: the class changes, nothing is copied)."""
    for m in model.modules():
        if type(m) in _SYNCHRONIZED:
            m.__class__ = _SYNCHRONIZED[type(m)]
    return model


def plain_batchnorm(model: nn.Module) -> nn.Module:
    """The inverse of `synchronize_batchnorm`: what an export must see."""
    for m in model.modules():
        if type(m) in _PLAIN:
            m.__class__ = _PLAIN[type(m)]
    return model


def average_gradients(parameters: list[nn.Parameter], process: Process) -> None:
    """Sum every gradient over the processes and divide by their number, in one all-reduce."""
    if not process.distributed:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= process.world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def all_sum(values: list[float], process: Process) -> list[float]:
    """`values` summed over the processes (epoch totals for the metrics)."""
    if not process.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=process.device())
    dist.all_reduce(t)
    return t.tolist()


def from_torchrun(environ: dict[str, str]) -> Process | None:
    """The process that torchrun started (it passes RANK, WORLD_SIZE and LOCAL_RANK), joined to
    its process group; None outside torchrun."""
    if "WORLD_SIZE" not in environ or "RANK" not in environ:
        return None
    process = Process(int(environ["RANK"]), int(environ["WORLD_SIZE"]), int(environ.get("LOCAL_RANK", 0)))
    if process.distributed and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(process.local_rank)
        dist.init_process_group(backend(), init_method="env://", rank=process.rank, world_size=process.world)
    return process


def _worker(local_rank: int, world: int, rendezvous: str, work: Callable[..., Any], args: tuple) -> None:
    process = Process(local_rank, world, local_rank)
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend(), init_method=rendezvous, rank=local_rank, world_size=world)
    try:
        work(process, *args)
    finally:
        dist.destroy_process_group()


def spawn(nproc: int, work: Callable[..., Any], *args: Any) -> None:
    """Run `work(process, *args)` in `nproc` new local processes joined in one process group (a
    file rendezvous in a fresh temporary folder), and wait for all of them. A process that fails
    fails the run with its error."""
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="hwgen-ddp-") as tmp:
        rendezvous = "file://" + os.path.join(tmp, "rendezvous")
        try:
            mp.start_processes(_worker, args=(nproc, rendezvous, work, args), nprocs=nproc, start_method="spawn")
        except mp.ProcessRaisedException as exc:
            last = str(exc).strip().splitlines()[-1].removeprefix("hwgen.errors.HwgenError: ")
            raise HwgenError(f"a training process failed: {last}", where=f"--nproc {nproc}") from None
        except mp.ProcessExitedException as exc:
            raise HwgenError(f"a training process exited with status {exc.exit_code}",
                             where=f"--nproc {nproc}") from None


__all__ = ["Process", "SINGLE", "SyncBatchNorm1d", "SyncBatchNorm2d", "all_sum", "average_gradients", "from_torchrun", "plain_batchnorm",
           "spawn", "synchronize_batchnorm"]
