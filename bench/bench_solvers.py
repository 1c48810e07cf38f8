"""Speed of the foundation on this machine: sampler latency per solver/NFE, NFE-counter overhead, training
throughput and ground-truth cost, for the default digits teacher architecture. Prints markdown tables.

    .venv/bin/python bench/bench_solvers.py [--batch 599] [--repeats 5]

Uses a randomly initialised net: latency does not depend on the weights (the adaptive solver's NFE does; the
pipeline records the trained teacher's in reports/results).
"""
from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from flowlib.data import load_dataset
from flowlib.flow import TrainConfig, TrainData, train_teacher
from flowlib.metrics import time_call
from flowlib.models import build_model, count_parameters
from flowlib.solvers import CountingVelocity, ODESampler, solve, uniform_grid

ARCHS = {
    "mlp-512x4 (default)": {"arch": "mlp", "hidden": 512, "depth": 4},
    "unet-32x(1,2)": {"arch": "unet", "width": 32, "channel_mult": [1, 2]},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=599)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    digits = load_dataset("digits")
    noise = torch.randn(args.batch, *digits.shape)
    rows, train_rows = [], []
    for label, cfg in ARCHS.items():
        model = build_model(digits.shape, cfg).eval().requires_grad_(False)
        for method, nfe in [("euler", 1), ("euler", 8), ("heun", 8), ("rk4", 8), ("euler", 32)]:
            sampler = ODESampler.uniform(model, nfe, method)
            _, seconds = time_call(lambda s=sampler: s(noise), args.repeats)
            rows.append({"model": label, "solver": method, "nfe": nfe, "ms_per_sample": 1e3 * seconds / args.batch,
                         "ms_per_nfe_batch": 1e3 * seconds / nfe})
        grid = uniform_grid(32)
        with torch.no_grad():
            _, plain = time_call(lambda m=model, g=grid: solve(m, noise, g, "euler"), args.repeats)
            _, counted = time_call(lambda m=model, g=grid: solve(CountingVelocity(m), noise, g, "euler"), args.repeats)
        rows.append({"model": label, "solver": "euler (counter overhead %)", "nfe": 32,
                     "ms_per_sample": 100 * (counted - plain) / plain, "ms_per_nfe_batch": float("nan")})
        train_model = build_model(digits.shape, cfg)
        start = time.perf_counter()
        train_teacher(train_model, TrainData(digits.sample_batch, 256), TrainConfig(steps=50, warmup=5), progress=False)
        train_rows.append({"model": label, "params": count_parameters(train_model),
                           "train_steps_per_s (batch 256)": 50 / (time.perf_counter() - start)})
    print(f"## Sampling latency, batch {args.batch}, {torch.get_num_threads()} threads, best of {args.repeats}\n")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"))
    print("\n## Training throughput\n")
    print(pd.DataFrame(train_rows).to_markdown(index=False, floatfmt=".2f"))


if __name__ == "__main__":
    main()
