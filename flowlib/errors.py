"""The one base of every error flowlib raises, and the argument checks the public API shares.

Catch `flowlib.FlowlibError` to handle anything flowlib refuses; each subclass also derives from the built-in
exception a Python user would expect (`ValueError`, `TypeError`, `RuntimeError`, `FloatingPointError`), so existing
`except ValueError` code keeps working. Every message names the problem and the fix.
"""
from __future__ import annotations

import inspect
import math
from typing import Any, Callable


class FlowlibError(Exception):
    """Base of every error flowlib raises.

    >>> import flowlib
    >>> try:
    ...     flowlib.ODESampler(lambda x, t: -x, 0)
    ... except flowlib.FlowlibError as err:
    ...     print(type(err).__name__)
    GridError
    """


class ArgumentError(FlowlibError, TypeError, ValueError):
    """A public function or constructor got an argument of the wrong type or an impossible value.

    >>> from flowlib import ODESampler
    >>> try:
    ...     ODESampler.uniform(lambda x, t: -x, 3, "heun")
    ... except ArgumentError as err:
    ...     print(err)
    heun needs a multiple of 2 NFE, got nfe=3.
    """


def exception_line(exc: BaseException, limit: int = 200) -> str:
    """`Type: first line of the message` (at most `limit` characters of it), for quoting a caught error in ours."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:limit]}" if lines else type(exc).__name__


def describe(value: Any) -> str:
    """A short description of a value for an error message: its type, and the value when it is small."""
    text = repr(value)
    return f"{type(value).__name__} {text}" if len(text) <= 40 else type(value).__name__


def require(ok: bool, name: str, must: str, value: Any) -> None:
    """Raise `ArgumentError` "`name` must be `must`, got ..." unless `ok`."""
    if not ok:
        raise ArgumentError(f"{name} must be {must}, got {describe(value)}.")


def require_int(name: str, value: Any, minimum: int = 1) -> int:
    """An int (not a bool) of at least `minimum`."""
    require(isinstance(value, int) and not isinstance(value, bool) and value >= minimum, name,
            f"an integer ≥ {minimum}", value)
    return value


def require_number(name: str, value: Any, low: float = -math.inf, high: float = math.inf, *,
                   low_open: bool = False) -> float:
    """A finite real number in [low, high] ((low, high] with `low_open`)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low) and value <= high
    bounds = f"in {'(' if low_open else '['}{low:g}, {high:g}]" if math.isfinite(low) or math.isfinite(high) else ""
    require(ok, name, f"a finite number {bounds}".strip(), value)
    return float(value)


def require_velocity(name: str, velocity: Any, arity: int = 2) -> None:
    """A callable v(x, t) (a network or a function); `arity` positional tensors (a refiner takes 3: x, t, v)."""
    if not callable(velocity):
        raise ArgumentError(f"{name} must be a velocity field: a callable v(x, t) (a network or a function), got "
                            f"{describe(velocity)}.")
    target: Callable = velocity.forward if hasattr(velocity, "forward") and callable(velocity.forward) else velocity
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # builtins and some C extensions have none: the first call will tell
        return
    try:
        signature.bind(*range(arity))
    except TypeError:
        args = ", ".join(["x", "t", "v"][:arity])
        raise ArgumentError(f"{name} must accept {arity} positional arguments ({args}): flowlib calls it as "
                            f"{name}({args}) with t a [batch] tensor of times; its signature is {signature}. "
                            "Wrap a time-independent field: `lambda x, t: f(x)`.") from None
