"""Training throughput of flowlib's shared trainer: samples per second and achieved TFLOP/s (beside the device's peak,
where it is known) for the MLP and UNet teachers of the image profiles, in fp32 and bf16, on whatever device runs it.

FLOPs per step are counted by torch's FlopCounterMode (matrix products and convolutions, forward and backward), the same
count the trainer records as a run's cost; the time is the wall time of `steps` steps after a warm-up run (CUDA
synchronised on both sides). bf16 is skipped, and said so, where the device has no bf16 support. The data are random
pixels: a step's time does not depend on them.

    python bench/bench_train.py                    # one JSON line per (teacher, precision); also bench/results/
    FLOWLIB_DEVICE=cpu python bench/bench_train.py --steps 20
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from flowlib import TrainConfig, TrainData, build_model, train_teacher
from flowlib.device import bf16_supported, resolve_device
from flowlib.metrics import wall_time
from flowlib.models import count_parameters

SHAPE = (1, 28, 28)
TEACHERS = {  # name: (model config, batch)
    "mlp-1024x4 (fashion profile)": ({"arch": "mlp", "hidden": 1024, "depth": 4}, 256),
    "unet-32 [1,2,2] x1 (fashion-gpu profile)": ({"arch": "unet", "width": 32, "channel_mult": [1, 2, 2],
                                                  "num_res_blocks": 1, "attention_levels": []}, 128),
}
# dense peak TFLOP/s of the tensor cores per precision (fp32 runs as TF32 on them); other devices: no peak given
PEAKS = {"H100": {"fp32": 494.7, "bf16": 989.4}, "H200": {"fp32": 494.7, "bf16": 989.4},
         "A100": {"fp32": 156.0, "bf16": 312.0}}


def peak(device: torch.device, precision: str) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((p[precision] for key, p in PEAKS.items() if key in name), None)


def measure(name: str, config: dict, batch: int, precision: str, device: torch.device, steps: int) -> dict:
    torch.manual_seed(0)
    model = build_model(SHAPE, config).to(device)
    data = TrainData(lambda n, g: torch.randn(n, *SHAPE, generator=g), batch)
    settings = {"warmup": 2, "precision": precision}
    train_teacher(model, data, TrainConfig(steps=5, log_every=5, **settings), progress=False)  # warm-up (autotune)
    result, seconds = wall_time(lambda: train_teacher(model, data, TrainConfig(steps=steps, log_every=steps, **settings),
                                                      progress=False))
    flops_per_step = result.flops / steps
    achieved = flops_per_step * steps / seconds / 1e12
    top = peak(device, precision)
    return {"teacher": name, "device": str(device), "device_name": torch.cuda.get_device_name(device)
            if device.type == "cuda" else "cpu", "precision": precision, "params": count_parameters(model),
            "batch": batch, "steps": steps, "ms_per_step": round(1e3 * seconds / steps, 3),
            "samples_per_s": round(batch * steps / seconds, 1), "gflop_per_step": round(flops_per_step / 1e9, 3),
            "tflops": round(achieved, 3), "peak_tflops": top, "peak_fraction": round(achieved / top, 4) if top else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="timed optimiser steps per measurement")
    args = parser.parse_args()
    device = resolve_device("auto")
    rows = []
    for name, (config, batch) in TEACHERS.items():
        for precision in ("fp32", "bf16"):
            if precision == "bf16" and not bf16_supported(device):
                row = {"teacher": name, "device": str(device), "precision": precision, "skipped": "no bf16 on this device"}
            else:
                row = measure(name, config, batch, precision, device, args.steps)
            rows.append(row)
            print(json.dumps(row), flush=True)
    tag = torch.cuda.get_device_name(device).split()[-1].lower() if device.type == "cuda" else "cpu"
    out = Path(__file__).parent / "results" / f"bench_train-{tag}.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
