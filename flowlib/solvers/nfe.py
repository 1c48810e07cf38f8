"""The checking layer every evaluation of a user's velocity field passes through, and NFE counting.

Samplers, the Bellman cost matrix, Bespoke's ground truth and training, refiner and FGM training all call a user's
field through `CountingVelocity`, which counts the calls (one call on a batch is one NFE: counted, never computed
by formula) and checks, cheaply, on every call that the output is a floating tensor of x's shape (no silent
broadcasting). A first call that fails inside the field is re-raised as `VelocityCallError` naming the input it got.

NaN/inf: a sampler checks its *output* once per call (a NaN or inf anywhere along an ODE solve reaches the final
state), and only when that fails re-runs the same noise with a per-call check to name the first bad evaluation
(`CountingSampler`); paths with no single output to check (the adaptive ground truth, the Bellman rollout, training)
check every call (`per_call=True`). `check_finite=False` is the one opt-out.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..errors import ArgumentError, FlowlibError, describe, exception_line

Velocity = Callable[[Tensor, Tensor], Tensor]


class VelocityShapeError(FlowlibError, ValueError):
    """A velocity field returned an output that cannot be a velocity for its input.

    >>> from flowlib import ODESampler
    >>> try:
    ...     ODESampler(lambda x, t: x.sum(1), 2)(torch.ones(3, 2))
    ... except VelocityShapeError:
    ...     print("refused")
    refused
    """


class NonFiniteError(FlowlibError, FloatingPointError):
    """A velocity field (or a sampler step) produced NaN or inf.

    >>> from flowlib import ODESampler
    >>> try:
    ...     ODESampler(lambda x, t: x / 0 * 0, 2)(torch.ones(3, 2))
    ... except NonFiniteError as err:
    ...     print(str(err)[:58])
    the velocity field (sampler 'euler') returned NaN or inf a
    """


class VelocityCallError(FlowlibError, RuntimeError):
    """A velocity field raised on its first call: the input does not suit it (shape, dtype, device, signature).

    >>> from flowlib import ODESampler
    >>> try:
    ...     ODESampler(lambda x, t: x @ torch.ones(5, 5), 2)(torch.ones(3, 2))
    ... except VelocityCallError:
    ...     print("refused")
    refused
    """


class CountingVelocity:
    """Wraps v(x, t) (or any net, e.g. a refiner r(x, t, v)) and counts its calls: one call on a batch is one NFE.

    Every output is checked against `x` (same shape, floating dtype); with `per_call` and `check_finite` every
    output is also checked for NaN/inf, and the error names the call and its time (samplers leave `per_call` off and
    check their output once instead, see `ensure_finite`).

    >>> v = CountingVelocity(lambda x, t: -x)
    >>> _ = v(torch.ones(4, 2), torch.zeros(4)); v.nfe
    1
    >>> try:
    ...     CountingVelocity(lambda x, t: x[:, :1])(torch.ones(4, 2), torch.zeros(4))
    ... except VelocityShapeError as err:
    ...     print(str(err)[:68])
    velocity (evaluation 1) returned shape (4, 1) for x of shape (4, 2);

    Args:
        velocity: the field (or a refiner r(x, t, v)); check_finite: check outputs for NaN/inf; name: how errors name
        it; per_call: check every call (samplers check their output once instead).
    """

    def __init__(self, velocity: Velocity, check_finite: bool = True, name: str = "velocity", per_call: bool = True):
        self.velocity = velocity
        self.check_finite = check_finite
        self.per_call = per_call
        self.name = name
        self.nfe = 0

    def __call__(self, x: Tensor, t: Tensor, *rest: Tensor) -> Tensor:
        self.nfe += 1
        if self.nfe == 1:
            out = self._first_call(x, t, *rest)
        else:
            out = self.velocity(x, t, *rest)
        if type(out) is not Tensor or out.shape != x.shape or not out.is_floating_point():
            check_output(out, x, f"{self.name} (evaluation {self.nfe})")
        if self.per_call and self.check_finite and not torch.isfinite(out).all():
            when = float(t.reshape(-1)[0]) if isinstance(t, Tensor) and t.numel() else float(t)
            if torch.isfinite(x).all():
                cause = ("on a finite input. Check the field near that time (a division by 1 - t or t?)")
            else:
                cause = ("because its input already held NaN or inf: the state fed to the field (a diverged step, or "
                         "NaN in the data or ground truth it was given) is the problem, not the field")
            raise NonFiniteError(f"{self.name} returned NaN or inf at evaluation {self.nfe} (t = {when:.4g}) {cause}; "
                                 "pass check_finite=False to skip this check.")
        return out

    def _first_call(self, x: Tensor, t: Tensor, *rest: Tensor) -> Tensor:
        """The first call, where a field that does not suit its input shows it: any exception it raises becomes a
        `VelocityCallError` (the original chained), and a field that changes its input in place is refused (the
        samplers reuse the state, so the caller's noise would change under it)."""
        before = x.detach().clone() if isinstance(x, Tensor) else None
        try:
            out = self.velocity(x, t, *rest)
        except FlowlibError:
            raise
        except Exception as exc:
            raise VelocityCallError(
                f"{self.name} failed on its first call, with x of shape {tuple(x.shape)} and dtype {x.dtype} on "
                f"{x.device}: {exception_line(exc, 300)}. Does the noise match "
                "the field's input (shape, dtype, device), and does the field take (x, t)?") from exc
        if before is not None and not ((x == before) | (x.isnan() & before.isnan())).all():
            with torch.no_grad():
                x.copy_(before)  # the caller's tensor as it was
            raise VelocityCallError(f"{self.name} changed its input x in place on its first call (e.g. x.mul_ or x += …): "
                                    "the samplers reuse the state, so the caller's noise would change too. Return a new "
                                    "tensor instead (x * 2, x + …).")
        return out


def check_output(out: object, x: Tensor, name: str = "velocity") -> None:
    """Raise `VelocityShapeError` unless `out` is a floating tensor of x's shape (no silent broadcasting)."""
    if not isinstance(out, Tensor):
        raise VelocityShapeError(f"{name} returned {type(out).__name__}, expected a tensor shaped like x {tuple(x.shape)}.")
    if tuple(out.shape) != tuple(x.shape):
        raise VelocityShapeError(f"{name} returned shape {tuple(out.shape)} for x of shape {tuple(x.shape)}; a velocity "
                                 "field must return one value per coordinate of x (the same shape).")
    if not out.is_floating_point():
        raise VelocityShapeError(f"{name} returned dtype {out.dtype}; a velocity must be floating point like x ({x.dtype}).")


def _parameter_dtype(field: Any) -> torch.dtype | None:
    if isinstance(field, nn.Module):
        for p in field.parameters():
            if p.is_floating_point():
                return p.dtype
    return None


def check_noise(noise: Any, field: Any, who: str) -> None:
    """Refuse noise a sampler cannot integrate: not a floating tensor with a batch axis, a dtype other than the
    network's weights, or a shape other than a flowlib network's data shape (`who` names the sampler)."""
    if not isinstance(noise, Tensor):
        raise ArgumentError(f"{who}: noise must be a torch tensor [batch, ...], got {describe(noise)}.")
    if not noise.is_floating_point():
        raise ArgumentError(f"{who}: noise has dtype {noise.dtype}; it must be floating point (integer noise would "
                            "truncate every step). Draw it with torch.randn, or pass noise.float().")
    if noise.dim() < 2 or noise.shape[0] == 0:
        raise ArgumentError(f"{who}: noise must have a batch axis and at least one sample, [batch, ...], got shape "
                            f"{tuple(noise.shape)}. For one sample use noise[None].")
    dtype = _parameter_dtype(field)
    if dtype is not None and dtype != noise.dtype:
        raise ArgumentError(f"{who}: noise has dtype {noise.dtype} but the network's weights are {dtype}. Pass "
                            f"noise.to({dtype}) (or convert the network, e.g. model.to({noise.dtype})).")
    shape = getattr(field, "shape", None)
    if isinstance(field, nn.Module) and isinstance(shape, tuple) and tuple(noise.shape[1:]) != shape:
        raise ArgumentError(f"{who}: noise has shape {tuple(noise.shape)} but the network models data of shape "
                            f"{shape}; draw noise as torch.randn(batch, {', '.join(map(str, shape))}).")


def ensure_finite(out: Tensor, rerun_per_call: Callable[[], Any], name: str, check_finite: bool) -> None:
    """A sampler's one NaN/inf check of its samples `out`. Only when it fails is `rerun_per_call()` run: the same noise
    again with every evaluation checked, which raises naming the first evaluation and time that went non-finite."""
    if check_finite and not torch.isfinite(out).all():
        rerun_per_call()
        raise NonFiniteError(f"{name}: the samples contain NaN or inf although every evaluation of the field was "
                             "finite (a step overflowed?); try more steps, or pass check_finite=False to skip this check.")
