"""What a trainer learns from: `TrainData[S]`, a typed source `S`, a batch size and optional held-out data.

Each trainer takes one kind of source, and its signature says which:

| source | what it is | trainers |
|---|---|---|
| `DataSampler` | data points drawn on demand, `sample(n, generator)` | `train_teacher`, `train_refiner`, `train_autoencoder` |
| `Coupling` | noise and the teacher's sample from each noise, row by row | `reflow` |
| `NoiseShape` | the shape of one data point (the method draws only noise) | `train_fgm` |
| `StraighteningPairs` | the teacher's states at both ends of each Bellman interval | `straighten` |
| `DenseTrajectories` | the teacher's ODE paths on a fine time grid | `train_bespoke` |

The last two are built by their method's module (`straightening_pairs`, `dense_ground_truth`). For convenience a plain
function is taken as a `DataSampler`, a pair of tensors of one shape as a `Coupling` and a tuple of positive ints as a
`NoiseShape`; anything else reaches the trainer as it is and is refused there, naming the kind it takes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Generic, TypeVar

import torch
from torch import Tensor

from .errors import ArgumentError, describe, require_int


class Source:
    """One kind of training data, the `source` of a `TrainData`. `what` names it in error messages."""

    what: ClassVar[str] = "a training source"


@dataclass(frozen=True)
class DataSampler(Source):
    """Data points drawn on demand: `sample(n, generator) -> [n, ...]` (a dataset's `sample_batch`, any function).

    Args:
        sample: the function that draws n data points with a `torch.Generator`.

    >>> DataSampler(lambda n, g: torch.randn(n, 2, generator=g))(3, torch.Generator()).shape
    torch.Size([3, 2])
    """

    what: ClassVar[str] = "a data sampler sample(n, generator)"
    sample: Callable[[int, torch.Generator], Tensor]

    def __call__(self, n: int, generator: torch.Generator) -> Tensor:
        return self.sample(n, generator)


@dataclass(frozen=True)
class Coupling(Source):
    """Noise z and the teacher's sample x1 = ODE(z), row by row: the pairs a reflow student learns to map.

    Args:
        noise: the noises z [n, ...]; target: the teacher's sample from each, of the same shape.

    >>> len(Coupling(torch.zeros(4, 2), torch.ones(4, 2)))
    4
    """

    what: ClassVar[str] = "the coupling (z, x1) of two tensors of one shape"
    noise: Tensor
    target: Tensor

    def __post_init__(self) -> None:
        if not (isinstance(self.noise, Tensor) and isinstance(self.target, Tensor)
                and self.noise.shape == self.target.shape):
            raise ArgumentError(f"Coupling(noise, target) takes two tensors of one shape [n, ...], got "
                                f"{_shapes(self.noise, self.target)}.")

    def __len__(self) -> int:
        return len(self.noise)


@dataclass(frozen=True)
class NoiseShape(Source):
    """The shape of one data point: all a data-free method (FGM) needs, since it draws only noise.

    Args:
        shape: the data shape, e.g. (2,) or (1, 8, 8).

    >>> NoiseShape((1, 8, 8)).shape
    (1, 8, 8)
    """

    what: ClassVar[str] = "the data shape, a tuple of positive ints such as (2,) or (1, 8, 8)"
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if not _is_shape(self.shape):
            raise ArgumentError(f"NoiseShape takes {self.what}, got {describe(self.shape)}.")
        object.__setattr__(self, "shape", tuple(self.shape))


S = TypeVar("S")


@dataclass(frozen=True)
class TrainData(Generic[S]):
    """What a public trainer learns from, one object for every method: `source` to draw minibatches from (its kind,
    per trainer, in the module docstring), `batch_size` per optimiser step, and optional `heldout` data for the
    validation score (held-out data points; for `train_bespoke`, `(val_noise, val_target)`).

    Args:
        source: a `Source` (a plain function, a pair of tensors or a tuple of ints stand for the obvious one);
        batch_size: samples per optimiser step (an int ≥ 1); heldout: the validation data, where the method has one.

    >>> TrainData(lambda n, g: torch.randn(n, 2, generator=g), 64).source.what
    'a data sampler sample(n, generator)'
    """

    source: S
    batch_size: int
    heldout: Any = None

    def __post_init__(self) -> None:
        require_int("batch_size", self.batch_size)
        object.__setattr__(self, "source", _typed(self.source))


def require_data(data: Any, trainer: str, kind: type[Source]) -> None:
    """Refuse anything but a `TrainData` whose source is of `kind`, naming the kind the trainer takes."""
    if not isinstance(data, TrainData):
        raise ArgumentError(f"{trainer}: data must be a flowlib.TrainData(source, batch_size, heldout=None) with "
                            f"{kind.what} as its source, got {describe(data)}.")
    if not isinstance(data.source, kind):
        raise ArgumentError(f"{trainer}: data.source must be {kind.what} (flowlib.{kind.__name__}), got "
                            f"{describe(data.source)}.")


def _typed(source: Any) -> Any:
    """The typed source a shorthand stands for (a function, a pair of tensors, a shape); anything else unchanged."""
    if isinstance(source, Source):
        return source
    if callable(source):
        return DataSampler(source)
    if (isinstance(source, tuple) and len(source) == 2 and all(isinstance(t, Tensor) for t in source)
            and source[0].shape == source[1].shape):
        return Coupling(*source)
    if _is_shape(source):
        return NoiseShape(tuple(source))
    return source


def _is_shape(value: Any) -> bool:
    return (isinstance(value, (tuple, list)) and bool(value)
            and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in value))


def _shapes(*values: Any) -> str:
    return " and ".join(f"shape {tuple(v.shape)}" if isinstance(v, Tensor) else describe(v) for v in values)
