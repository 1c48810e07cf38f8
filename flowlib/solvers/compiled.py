"""Compiled sampling for every sampler: `torch.compile` units that fall back to eager loudly, and exact call counts
inside compiled code.

`CallTally` counts the calls of a field with an in-graph tensor increment: the count is exact (one call on a batch
is one NFE, as in eager mode), and since no Python value changes, one compiled graph serves every call (an int
counter would be guarded on and recompile at every value). `CompiledFunction` compiles on first use with a dynamic
batch size; a compiler failure warns (`CompileFallbackWarning`) and runs the fallback instead, never silently.
"""
from __future__ import annotations

import time
import warnings
from typing import Any, Callable

import torch
from torch import Tensor


class CompileFallbackWarning(RuntimeWarning):
    """torch.compile failed; the sampler (or step) runs eagerly."""


class CallTally:
    """Wraps a field (v(x, t), or a refiner r(x, t, v)) and counts its calls in a tensor, for use inside compiled code.

    >>> tally = CallTally(lambda x, t: -x)
    >>> _ = tally(torch.ones(2, 1), torch.zeros(2)); _ = tally(torch.ones(2, 1), torch.zeros(2)); tally.nfe
    2
    """

    def __init__(self, field: Callable[..., Tensor]):
        self.field = field
        self.count = torch.zeros((), dtype=torch.int64)

    def __call__(self, x: Tensor, t: Tensor, *rest: Tensor) -> Tensor:
        self.count.add_(1)
        return self.field(x, t, *rest)

    def reset(self) -> None:
        self.count.zero_()

    @property
    def nfe(self) -> int:
        return int(self.count)


class CompiledFunction:
    """`fn` compiled on first use (dynamic batch size); on a compiler failure, a `CompileFallbackWarning` and
    `fallback` (default: `fn` eagerly) from then on. `compile_seconds` is the time of first calls at new batch sizes."""

    def __init__(self, fn: Callable[..., Any], name: str, fallback: Callable[..., Any] | None = None):
        self.name = name
        self.fallback = fallback or fn
        self.compiled = torch.compile(fn, dynamic=True)
        self.error: Exception | None = None
        self.compile_seconds = 0.0
        self._shapes: set[tuple[int, ...]] = set()

    def __call__(self, *args: Tensor) -> Any:
        if self.error is not None:
            return self.fallback(*args)
        shape = tuple(args[0].shape)
        first = shape not in self._shapes
        start = time.perf_counter()
        try:
            out = self.compiled(*args)
        except Exception as exc:  # noqa: BLE001 - any compiler failure: warn and run eagerly
            self.error = exc
            warnings.warn(f"torch.compile failed for {self.name} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                          "); running it eagerly.", CompileFallbackWarning, stacklevel=2)
            return self.fallback(*args)
        if first:  # the first call at a batch size compiles (or looks up) its graph
            self.compile_seconds += time.perf_counter() - start
            self._shapes.add(shape)
        return out
