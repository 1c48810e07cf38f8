"""Data-parallel training on CPU (gloo): every public trainer under torchrun with two processes ends with the same
weights on both ranks, and matches one process trained on the same global batch.

Each rank draws the same global batch from the trainer's seed and keeps its half (`flowlib.device.shard`); DDP (or, for
a Bespoke solver, a hand all-reduce) averages the two half-batch gradients into the global-batch gradient. Float
summation order differs between the two, so the match is to a tolerance, not bitwise.
"""
import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent('''
    import json, os, sys
    import torch
    from flowlib import TrainConfig, TrainData, VelocityRefiner, build_model, ring_mixture, straighten, train_refiner, \\
        train_teacher
    from flowlib.data import load_dataset
    from flowlib.distill.bespoke import bespoke_config, dense_ground_truth, train_bespoke
    from flowlib.distill.boss import straightening_pairs
    from flowlib.distill.fgm import OneStepGenerator, train_fgm
    from flowlib.distill.reflow import reflow
    from flowlib.models import MLPVelocity
    from flowlib.solvers import euler_rollout
    from flowlib.solvers.bespoke import BespokeSolver

    torch.set_num_threads(1)
    out_dir, rank = sys.argv[1], int(os.environ.get("RANK", "0"))
    ds = load_dataset("moons", n_toy=1000)
    MLP = {"arch": "mlp", "hidden": 32, "depth": 3}
    cfg = lambda **kw: TrainConfig(**{"steps": 12, "lr": 3e-3, "warmup": 2, "log_every": 4, "ckpt_every": 6, **kw})
    flat = lambda m: torch.cat([p.detach().flatten().double() for p in m.state_dict().values()]).tolist()
    results = {}

    torch.manual_seed(rank)  # a different init per rank: DDP must broadcast rank 0's weights (the EMA copy too)
    net = build_model(ds.shape, MLP)
    r = train_teacher(net, TrainData(ds.sample_batch, 64, ds.heldout[:128]), cfg(val_every=4),
                      ckpt_dir=os.path.join(out_dir, "teacher"), progress=False)
    results["teacher"] = (flat(r.model), flat(r.ema_model), r.history)
    torch.manual_seed(4)  # the distillers' teacher: the same weights in every run (a trained one differs by float error)
    teacher = build_model(ds.shape, MLP).eval().requires_grad_(False)

    z = torch.randn(64, 2, generator=torch.Generator().manual_seed(1))
    roll = euler_rollout(teacher, z, 8)
    pairs = straightening_pairs(roll, torch.tensor([0, 2, 5, 8]))
    r = straighten(teacher, None, TrainData(pairs, 32), cfg(), progress=False)
    results["straighten"] = (flat(r.model), flat(r.ema_model), r.history)
    r = straighten(teacher, None, TrainData(pairs, 32), cfg(), lora_rank=2, progress=False)
    results["straighten-lora"] = (flat(r.model), flat(r.ema_model), r.history)
    r = reflow(teacher, None, TrainData((z, roll.states[-1]), 32), cfg(), progress=False)
    results["reflow"] = (flat(r.model), flat(r.ema_model), r.history)

    gt = dense_ground_truth(teacher, z[:48], 9)
    r = train_bespoke(teacher, BespokeSolver("rk2", 2), TrainData(gt, 16, (z[48:], roll.states[-1][48:])),
                      bespoke_config(8, 1e-2, val_every=4), progress=False)
    results["bespoke"] = (flat(r.model), flat(r.ema_model), r.history)

    torch.manual_seed(2)
    refiner = VelocityRefiner((2,), {"arch": "mlp", "hidden": 16, "depth": 2})
    r = train_refiner(teacher, refiner, TrainData(ds.sample_batch, 32, ds.heldout[:64]), cfg(val_every=4),
                      delta_max=0.2, progress=False)
    results["refiner"] = (flat(r.model), flat(r.ema_model), r.history)

    torch.manual_seed(3)
    gen = OneStepGenerator(MLPVelocity((2,), hidden=16, depth=2, time_dim=8), 0.1)
    online = MLPVelocity((2,), hidden=16, depth=2, time_dim=8)
    r = train_fgm(ring_mixture(), gen, TrainData((2,), 32), cfg(lr=1e-3, log_every=3), online=online, progress=False,
                  ckpt_dir=os.path.join(out_dir, "fgm"))
    results["fgm"] = (flat(r.model), flat(r.ema_model), r.history, r.extras["online_history"])
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(results, f)
''')

TRAINERS = ["teacher", "straighten", "straighten-lora", "reflow", "bespoke", "refiner", "fgm"]
TOLERANCE = 2e-5  # largest weight difference (absolute) after 12 Adam steps between 2 ranks and 1 process


def _run(cmd, out, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(env_extra or {})
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    script = tmp / "ddp_train.py"
    script.write_text(SCRIPT)
    single, multi = tmp / "single", tmp / "multi"
    single.mkdir(), multi.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
          f"--master_port={port}", str(script), str(multi)], multi, {"FLOWLIB_DEVICE": "cpu"})
    _run([sys.executable, str(script), str(single)], single, {"FLOWLIB_DEVICE": "cpu"})
    ranks = [json.loads((multi / f"rank{r}.json").read_text()) for r in (0, 1)]
    return ranks, json.loads((single / "rank0.json").read_text()), multi


@pytest.mark.parametrize("trainer", TRAINERS)
def test_two_ranks_end_equal_and_match_one_process(runs, trainer):
    (rank0, rank1), single, _ = runs
    assert rank0[trainer][0] == rank1[trainer][0]   # gradients averaged every step: identical weights
    assert rank0[trainer][1] == rank1[trainer][1]   # and identical EMA (it starts after DDP's broadcast)
    for got, want in zip(rank0[trainer][:2], single[trainer][:2]):
        assert max(abs(a - b) for a, b in zip(got, want)) < TOLERANCE
    # the logged loss is the global batch's (reduced over the ranks), as one process logs it
    assert [s for s, _ in rank0[trainer][2]] == [s for s, _ in single[trainer][2]]
    assert all(abs(a - b) <= TOLERANCE * max(1.0, abs(b)) for (_, a), (_, b) in zip(rank0[trainer][2], single[trainer][2]))


def test_rank_zero_alone_writes_checkpoints(runs):
    *_, multi = runs
    assert (multi / "teacher" / "last.pt").exists() and (multi / "fgm" / "last.pt").exists()
