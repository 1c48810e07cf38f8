"""Every sampler, eager and compiled, against a raw Python loop of the same network calls, at batch 1 and 256.

    .venv/bin/python bench/bench_samplers.py [--calls 200] [--repeats 7] [--batches 1 256]

The raw loop makes exactly the network calls the sampler counted (teacher and refiner), each followed by the cheapest
update (x + h v): what any sampler must at least cost. Target (issue "one shape"): compiled, every sampler at most
1.05x its raw loop at batch 1. The teacher is the default digits MLP (512x4 over 64 pixels), the refiner the default
profile's; 2 threads as on the developers' machine. Prints a markdown table of median microseconds per sampler call.
"""
from __future__ import annotations

import argparse
import time
import warnings
from functools import partial

import pandas as pd
import torch
from timing import per_call_us

from flowlib.data import load_dataset
from flowlib.distill.fgm import GeneratorSampler, OneStepGenerator
from flowlib.models import VelocityRefiner, build_model
from flowlib.solvers import AdaptiveSampler, ODESampler
from flowlib.solvers.bellman import bellman_sampler
from flowlib.solvers.bespoke import BespokeSampler, BespokeSolver
from flowlib.solvers.compiled import CompileFallbackWarning
from flowlib.solvers.flowturbo import FlowTurboSampler


def samplers(model, refiner, rollout_noise, compiled: bool) -> dict[str, object]:
    generator = OneStepGenerator(model, 0.1).eval()  # inference mode, as a user samples
    return {
        "euler 8": ODESampler.uniform(model, 8, "euler", compiled=compiled),
        "heun 8": ODESampler.uniform(model, 8, "heun", compiled=compiled),
        "rk4 8": ODESampler.uniform(model, 8, "rk4", compiled=compiled),
        "bellman K=8": bellman_sampler(model, rollout_noise, 8, n_fine=100, compiled=compiled),
        "bespoke rk2 8": BespokeSampler(model, BespokeSolver("rk2", 4), compiled=compiled),
        "flowturbo H1P6": FlowTurboSampler(model, "H1P6", compiled=compiled),
        "flowturbo H1P4R2": FlowTurboSampler(model, "H1P4R2", refiner, compiled=compiled),
        "fgm (one step)": GeneratorSampler(generator, compiled=compiled),
        "adaptive 1e-5": AdaptiveSampler(model, compiled=compiled),
    }


def raw_loop(model, refiner, noise, teacher_calls: int, refiner_calls: int):
    """The same network calls in a plain loop, each with an Euler-like update."""
    t = torch.full((len(noise),), 0.5)

    @torch.no_grad()
    def run():
        x = noise
        for _ in range(teacher_calls):
            x = x + 0.01 * model(x, t)
        for _ in range(refiner_calls):
            x = x + 0.01 * refiner(x, t, x)
        return x

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    shape = load_dataset("digits").shape
    model = build_model(shape, {"arch": "mlp", "hidden": 512, "depth": 4}).eval().requires_grad_(False)
    refiner = VelocityRefiner(shape, {"arch": "mlp", "hidden": 128, "depth": 2}).eval().requires_grad_(False)
    rollout_noise = torch.randn(64, *shape, generator=torch.Generator().manual_seed(1))
    eager, compiled = samplers(model, refiner, rollout_noise, False), samplers(model, refiner, rollout_noise, True)
    rows = []
    for batch in args.batches:
        noise = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(2))
        calls = max(5, args.calls // batch) if batch > 1 else args.calls
        for name in eager:
            with warnings.catch_warnings():
                warnings.simplefilter("error", CompileFallbackWarning)
                start = time.perf_counter()
                compiled[name](noise)
                compile_s = time.perf_counter() - start
            out_e, out_c = eager[name](noise), compiled[name](noise)
            raw = raw_loop(model, refiner, noise, eager[name].nfe, eager[name].refiner_calls)
            runs = {"raw loop": raw, "eager": partial(eager[name], noise), "compiled": partial(compiled[name], noise)}
            us = {mode: per_call_us(fn, calls, args.repeats) for mode, fn in runs.items()}
            rows.append({"sampler": name, "batch": batch, "NFE (teacher+refiner)":
                         f"{eager[name].nfe}+{eager[name].refiner_calls}", "raw loop µs": us["raw loop"],
                         "eager µs": us["eager"], "compiled µs": us["compiled"],
                         "eager × raw": us["eager"] / us["raw loop"], "compiled × raw": us["compiled"] / us["raw loop"],
                         "max |compiled − eager|": float((out_c - out_e).abs().max()), "first compiled call s": compile_s})
    print(f"## Samplers against a raw loop of their network calls (digits MLP 512x4, {torch.get_num_threads()} threads)\n")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3g"))


if __name__ == "__main__":
    main()
