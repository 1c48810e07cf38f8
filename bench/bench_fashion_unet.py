"""Sizing a GPU variant of the Fashion-MNIST profile: flowlib's own trainer and samplers on 28x28 teachers (the CPU
profile's MLP and two UNets scaled down from the cifar10 profile's), on the device present (CUDA when there is one).

For each teacher: milliseconds per training step of `train_teacher` at the profile's batch (after a warm-up run), and
milliseconds per network evaluation of a fixed-grid sampler and of the dopri5 ground truth at 5,000 samples, with the
ground truth's NFE. The pixels are random: a step's time does not depend on them. It also checks that the trainer and
the samplers run with the model and the data on that device (they place nothing on the CPU themselves).

    python bench/bench_fashion_unet.py            # prints one JSON line per teacher
"""
from __future__ import annotations

import json
import sys

import torch

from flowlib import AdaptiveSampler, ODESampler, TrainConfig, TrainData, build_model, train_teacher
from flowlib.metrics import wall_time
from flowlib.models import count_parameters

SHAPE = (1, 28, 28)
TEACHERS = {
    "mlp-1024x4 (CPU profile)": ({"arch": "mlp", "hidden": 1024, "depth": 4}, 256),
    "unet-32 [1,2,2] x1": ({"arch": "unet", "width": 32, "channel_mult": [1, 2, 2], "num_res_blocks": 1,
                            "attention_levels": []}, 128),
    "unet-64 [1,2,2] x2 attn@14": ({"arch": "unet", "width": 64, "channel_mult": [1, 2, 2], "num_res_blocks": 2,
                                    "attention_levels": [1]}, 128),
}


def measure(name: str, config: dict, batch: int, device: torch.device, steps: int, n_eval: int) -> dict:
    torch.manual_seed(0)
    model = build_model(SHAPE, config).to(device)
    data = TrainData(lambda n, g: torch.randn(n, *SHAPE, generator=g).to(device), batch)
    train_teacher(model, data, TrainConfig(steps=10, warmup=2, log_every=10), progress=False)  # warm-up (autotune)
    result, seconds = wall_time(lambda: train_teacher(model, data, TrainConfig(steps=steps, warmup=10, log_every=steps),
                                                      progress=False))
    step_ms = 1e3 * seconds / steps
    teacher = result.ema_model.eval().requires_grad_(False)
    noise = torch.randn(n_eval, *SHAPE, device=device)
    euler = ODESampler(teacher, 10, "euler")
    with torch.no_grad():
        euler(noise)
        out, seconds = wall_time(lambda: euler(noise))
        euler_ms = 1e3 * seconds / euler.nfe
        gt = AdaptiveSampler(teacher, rtol=1e-5, atol=1e-5)
        _, gt_s = wall_time(lambda: gt(noise))
    return {"teacher": name, "device": str(out.device), "params": count_parameters(model), "batch": batch,
            "train_ms_per_step": round(step_ms, 2), "train_flops_per_step": result.flops / max(result.steps, 1),
            "eval_batch": n_eval, "ms_per_nfe_at_eval_batch": round(euler_ms, 2), "dopri5_nfe": gt.nfe,
            "dopri5_seconds": round(gt_s, 2)}


def main(argv: list[str]) -> int:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    steps, n_eval = (200, 5000) if device.type == "cuda" else (5, 256)
    print(json.dumps({"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                      "torch": torch.__version__, "timed_steps": steps}), flush=True)
    for name, (config, batch) in TEACHERS.items():
        if argv and not any(a in name for a in argv):
            continue
        print(json.dumps(measure(name, config, batch, device, steps, n_eval)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
