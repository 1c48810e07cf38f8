"""DDP smoke test: two CPU processes (gloo) launched by torchrun train one model in lock-step."""
import json
import socket
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent('''
    import json, os, sys
    import torch
    from flowlib.data import load_dataset
    from flowlib.flow import TrainConfig, TrainData, train_teacher
    from flowlib.models import build_model
    torch.set_num_threads(1)
    ds = load_dataset("moons", n_toy=1000)
    torch.manual_seed(int(os.environ["RANK"]))  # different init per rank: DDP must broadcast rank 0's weights
    model = build_model(ds.shape, {"arch": "mlp", "hidden": 32, "depth": 3})
    result = train_teacher(model, TrainData(ds.sample_batch, 64), TrainConfig(steps=60, lr=3e-3, warmup=5, log_every=10,
                           ckpt_every=30), ckpt_dir=sys.argv[1], progress=False)
    flat = torch.cat([p.detach().flatten() for p in result.model.parameters()])
    out = {"rank": int(os.environ["RANK"]), "params": flat.tolist(), "history": result.history}
    with open(os.path.join(sys.argv[1], f"rank{out['rank']}.json"), "w") as f:
        json.dump(out, f)
''')


def test_ddp_two_processes(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={port}", str(script), str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["params"] == ranks[1]["params"]  # gradients were all-reduced every step
    losses = [loss for _, loss in ranks[0]["history"]]
    assert losses[-1] < losses[0]
    assert (tmp_path / "last.pt").exists()  # rank 0 wrote the checkpoint
