"""The one base of every error flowlib raises, and the argument checks the public API shares.

Catch `flowlib.FlowlibError` to handle anything flowlib refuses; each subclass also derives from the built-in
exception a Python user would expect (`ValueError`, `TypeError`, `RuntimeError`, `FloatingPointError`), so existing
`except ValueError` code keeps working. Every message names the problem and the fix.
"""
from __future__ import annotations

import functools
import inspect
import math
from typing import Annotated, Any, Callable, TypeVar

from pydantic import ConfigDict, Field, ValidationError, validate_call


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


# The argument layer: a public function declares each argument's range in its signature with these types and
# `@checked_args`; a value outside it is an `ArgumentError` naming the function, the argument and the range.
Positive = Annotated[int, Field(ge=1, strict=True)]
NonNegative = Annotated[int, Field(ge=0, strict=True)]
PositiveReal = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]  # strictly between 0 and 1
Shape = Annotated[tuple[Positive, ...], Field(min_length=1)]  # one sample's shape, e.g. (2,) or (1, 28, 28)
F = TypeVar("F", bound=Callable[..., Any])


def checked_args(fn: F) -> F:
    """Check `fn`'s arguments against the ranges in its signature (pydantic's `validate_call`, e.g. `hidden: Positive`)
    before it runs; a bad one raises `ArgumentError` with every problem, each naming the argument.

    >>> @checked_args
    ... def widths(hidden: Positive) -> int:
    ...     return hidden
    >>> try:
    ...     widths(0)
    ... except ArgumentError as err:
    ...     print(err)
    widths: hidden must be greater than or equal to 1, got int 0.
    """
    checked = validate_call(config=ConfigDict(arbitrary_types_allowed=True))(fn)
    name = fn.__qualname__.removesuffix(".__init__")
    params = list(inspect.signature(fn).parameters)

    def where(loc: tuple[Any, ...]) -> str:  # a positional argument's index as its name, items as [i]
        head = params[loc[0]] if loc and isinstance(loc[0], int) and loc[0] < len(params) else str(loc[0]) if loc else ""
        return (head + "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in loc[1:])) or "arguments"

    def problem(e: dict[str, Any]) -> str:
        if e["type"] == "unexpected_keyword_argument":
            return f"{where(e['loc'])} is not an argument (they are {', '.join(p for p in params if p != 'self')})"
        if e["type"] == "missing_argument":
            return f"{where(e['loc'])} is missing"
        if e["type"] == "missing":   # a fixed-length tuple given too few items
            return f"{where(e['loc'][:1])} needs an item at {where(e['loc'])}, got {describe(e.get('input'))}"
        if e["type"] == "too_short":
            return f"{where(e['loc'])} must have at least {e['ctx']['min_length']} item(s), got {describe(e.get('input'))}"
        return (f"{where(e['loc'])} must be {e['msg'].removeprefix('Input should be ').removeprefix('Value error, ')}, "
                f"got {describe(e.get('input'))}")

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return checked(*args, **kwargs)
        except ValidationError as exc:
            if exc.title != fn.__qualname__:  # raised inside fn, not about its arguments
                raise
            problems = "; ".join(problem(e) for e in exc.errors())
            raise ArgumentError(f"{name}: {problems}.") from None
    return wrapper  # type: ignore[return-value]
