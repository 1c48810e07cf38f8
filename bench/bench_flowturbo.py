"""FlowTurbo's speed on this machine: compile time per step kind, and ms per sample eager vs compiled at several batch
sizes, for the default digits teacher architecture and refiner. Prints markdown tables.

    .venv/bin/python bench/bench_flowturbo.py [--batches 1 8 64] [--repeats 7] [--schedules H5 H1P8 H1P4R2]

Uses randomly initialised nets (latency does not depend on the weights; a small non-zero refiner output layer so R steps
do real work). The pipeline's own latency table, with trained nets and quality beside it, is
reports/results/flowturbo-<teacher>-latency.csv.
"""
from __future__ import annotations

import argparse
from functools import partial

import pandas as pd
import torch

from flowlib.data import load_dataset
from flowlib.metrics import median_latency
from flowlib.models import VelocityRefiner, build_model, count_parameters
from flowlib.solvers.flowturbo import FlowTurboSampler, Schedule, compiled_steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--schedules", nargs="+", default=["H5", "H1P8", "H1P4R2", "H1P8R3"])
    args = parser.parse_args()
    torch.manual_seed(0)
    shape = load_dataset("digits").shape
    teacher = build_model(shape, {"arch": "mlp", "hidden": 512, "depth": 4}).eval().requires_grad_(False)
    refiner = VelocityRefiner(shape, {"arch": "mlp", "hidden": 128, "depth": 3, "time_dim": 32})
    with torch.no_grad():
        refiner.body.out.weight.normal_(0, 1e-3)
    refiner = refiner.eval().requires_grad_(False)
    steps = compiled_steps(teacher, refiner)
    rows = []
    for text in args.schedules:
        schedule = Schedule.parse(text)
        uses = refiner if schedule.count("R") else None
        eager = FlowTurboSampler(teacher, schedule, uses)
        compiled = FlowTurboSampler(teacher, schedule, uses, compiled=True, steps=steps)
        for b in args.batches:
            noise = torch.randn(b, *shape)
            compiled(noise)  # compiles on first use of a step kind and batch-size class
            ms = {name: 1e3 * median_latency(partial(s, noise), args.repeats) / b
                  for name, s in (("eager", eager), ("compiled", compiled))}
            rows.append({"schedule": str(schedule), "teacher NFE": schedule.teacher_calls,
                         "refiner calls": schedule.refiner_calls, "batch": b, "eager ms/sample": ms["eager"],
                         "compiled ms/sample": ms["compiled"], "speed-up": ms["eager"] / ms["compiled"]})
    print(f"## FlowTurbo latency ({torch.get_num_threads()} threads, median of {args.repeats}; teacher "
          f"{count_parameters(teacher):,} parameters, refiner {count_parameters(refiner):,})\n")
    print(pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3f"))
    print("\n## Compile time per step kind (first use, all batch sizes above)\n")
    print(pd.DataFrame([{"step": k, "compile seconds": s.compile_seconds, "fell back to eager": s.error is not None}
                        for k, s in steps.items()]).to_markdown(index=False, floatfmt=".2f"))


if __name__ == "__main__":
    main()
