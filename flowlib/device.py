"""Where flowlib computes, and how a big batch stays within memory: one device setting, bf16 autocast, seeded noise
that is the same on every device, chunked evaluation, and the per-rank shard of a global training batch under torchrun.

The device is a string in params (`device: auto | cpu | cuda | cuda:N`), overridden by the environment variable
`FLOWLIB_DEVICE`; `auto` is CUDA when it is available, else the CPU. Under torchrun (`LOCAL_RANK` set) a plain `cuda`
or `auto` means this process's own GPU, `cuda:LOCAL_RANK`. Noise is always drawn from a seeded CPU generator and then
moved, so one seed gives the same samples on any device (up to the device's float error).
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import re
from typing import Any, Callable, Iterator

import torch
from torch import Tensor

from .errors import FlowlibError

DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]+)?)$"  # the config's schema and `resolve_device` share it
PRECISIONS = ("fp32", "bf16")


class DeviceError(FlowlibError, ValueError):
    """A device or precision this machine cannot give (CUDA without a GPU, a GPU index beyond the count, bf16 where
    the device has no bf16 support).

    >>> try:
    ...     resolve_device("tpu")
    ... except DeviceError as err:
    ...     print(str(err)[:41])
    device must be auto, cpu, cuda or cuda:N,
    """


def resolve_device(spec: str | None = "auto") -> torch.device:
    """The `torch.device` a device setting names (`FLOWLIB_DEVICE` overrides `spec`), or a `DeviceError` that says
    what to set instead.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    spec = os.environ.get("FLOWLIB_DEVICE") or spec or "auto"
    if not isinstance(spec, str) or not re.match(DEVICE_PATTERN, spec):
        raise DeviceError(f"device must be auto, cpu, cuda or cuda:N, got {spec!r} (from "
                          f"{'FLOWLIB_DEVICE' if os.environ.get('FLOWLIB_DEVICE') else 'params'}).")
    if spec == "cpu" or (spec == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError(f"device {spec!r} asks for CUDA, but torch finds no CUDA GPU on this machine "
                          f"(torch {torch.__version__}, CUDA build {torch.version.cuda}). Set `device: auto` or `cpu` in "
                          "params.yaml (or FLOWLIB_DEVICE=cpu).")
    count = torch.cuda.device_count()
    local = os.environ.get("LOCAL_RANK")
    index = int(spec.split(":")[1]) if ":" in spec else int(local) if local is not None else 0
    if index >= count:
        raise DeviceError(f"device cuda:{index} does not exist: this machine has {count} GPU(s), cuda:0 to "
                          f"cuda:{count - 1}. Set `device: cuda` (this process's GPU under torchrun) or a smaller index.")
    return torch.device("cuda", index)


def check_precision(precision: str, device: torch.device) -> None:
    """Refuse a precision the device cannot run (`bf16` needs a bf16-capable GPU or CPU)."""
    if precision not in PRECISIONS:
        raise DeviceError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")
    if precision == "bf16" and not bf16_supported(device):
        raise DeviceError(f"precision bf16 is not supported on {device} here; set `precision: fp32` in the train block "
                          "(or run on a bf16-capable GPU: Ampere or newer).")


def bf16_supported(device: torch.device) -> bool:
    """Whether autocast to bfloat16 runs natively on `device`."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    mkldnn = getattr(torch.ops, "mkldnn", None)
    probe = getattr(mkldnn, "_is_mkldnn_bf16_supported", None) if mkldnn is not None else None
    return bool(probe()) if probe is not None else False


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on `device` when `precision` is bf16; a no-op context for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def device_of(module: Any) -> torch.device:
    """The device of a network's first weight (the CPU for a field without weights)."""
    params = getattr(module, "parameters", None)
    first = next(iter(params()), None) if callable(params) else None
    return first.device if first is not None else torch.device("cpu")


def seeded_noise(n: int, shape: tuple[int, ...], seed: int, device: torch.device | str = "cpu") -> Tensor:
    """`n` standard normal draws of `shape` from a CPU generator seeded with `seed`, moved to `device`: the same
    numbers on every device."""
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed)).to(device)


def chunked(fn: Callable[[Tensor], Tensor], x: Tensor, chunk: int | None) -> Tensor:
    """`fn(x)` computed `chunk` rows at a time and concatenated (the whole batch at once when `chunk` is None or not
    smaller than it): bounded memory for sampling, ground truth and features. `fn` must treat rows independently."""
    if chunk is None or len(x) <= chunk:
        return fn(x)
    return torch.cat([fn(part) for part in x.split(chunk)])


# ------------------------------------------------------------------------------- data parallel training
_SHARD: contextvars.ContextVar[tuple[int, int]] = contextvars.ContextVar("flowlib_shard", default=(0, 1))


@contextlib.contextmanager
def sharding(rank: int, world: int) -> Iterator[None]:
    """Inside, `shard` keeps this rank's rows of a global batch: what the trainer sets around one training step."""
    token = _SHARD.set((rank, world))
    try:
        yield
    finally:
        _SHARD.reset(token)


def shard(*tensors: Tensor) -> tuple[Tensor, ...]:
    """This rank's contiguous share of each global-batch tensor (all of it outside a data-parallel training step).

    Every rank draws the same global batch from the same seeded generator and keeps its share, so the gradient DDP
    averages is the single-process gradient of the global batch (equal shares; the batch must divide by the ranks).
    """
    rank, world = _SHARD.get()
    if world == 1:
        return tensors
    n = len(tensors[0])
    if n % world:
        raise DeviceError(f"a global batch of {n} does not split evenly over {world} processes; make the batch size a "
                          f"multiple of {world} (or launch fewer processes).")
    size = n // world
    return tuple(t[rank * size:(rank + 1) * size] for t in tensors)
