"""Cost of flowlib's checking layer at batch 1, where it weighs most: Euler, 8 steps, the default digits MLP.

    .venv/bin/python bench/bench_checks.py [--calls 400] [--repeats 15]

Three ways to run the same 8 forward calls: a raw Python loop, `ODESampler(..., check_finite=False)` (shape and
dtype checked on every call, no NaN check) and the default `ODESampler` (plus one NaN/inf check of the samples per
sampler call). Target (issue "nothing silent"): the default costs at most 3% over the unchecked sampler.
Prints a markdown table: median microseconds per sampler call over `repeats` timings of `calls` calls each.
"""
from __future__ import annotations

import argparse

import pandas as pd
import torch
from timing import per_call_us

from flowlib.data import load_dataset
from flowlib.models import build_model
from flowlib.solvers import ODESampler, uniform_grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.manual_seed(0)
    shape = load_dataset("digits").shape
    model = build_model(shape, {"arch": "mlp", "hidden": 512, "depth": 4}).eval().requires_grad_(False)
    noise = torch.randn(1, *shape)
    grid = uniform_grid(8)
    steps = [(grid[i].float().expand(1), float(grid[i + 1] - grid[i])) for i in range(8)]

    @torch.no_grad()
    def raw() -> torch.Tensor:
        x = noise
        for t, h in steps:
            x = x + h * model(x, t)
        return x

    unchecked, checked = ODESampler(model, 8, check_finite=False), ODESampler(model, 8)
    assert torch.allclose(raw(), checked(noise), atol=1e-5) and unchecked.nfe == checked.nfe == 8
    rows = []
    for _ in range(3):  # interleaved rounds: machine noise hits all three alike
        rows.append({"raw loop": per_call_us(raw, args.calls, args.repeats),
                     "sampler, check_finite=False": per_call_us(lambda: unchecked(noise), args.calls, args.repeats),
                     "sampler (default checks)": per_call_us(lambda: checked(noise), args.calls, args.repeats)})
    best = pd.DataFrame(rows).min()
    table = pd.DataFrame({"µs per sampler call": best, "× raw loop": best / best["raw loop"],
                          "% over unchecked": 100 * (best / best["sampler, check_finite=False"] - 1)})
    print(f"## Checking overhead: Euler, 8 NFE, batch 1, digits MLP 512x4, {torch.get_num_threads()} threads\n")
    print(table.to_markdown(floatfmt=".3f"))


if __name__ == "__main__":
    main()
