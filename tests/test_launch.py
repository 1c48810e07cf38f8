"""`python -m flowlib.launch`, what every training stage of dvc.yaml runs: with FLOWLIB_NPROC=2 the teacher notebook runs
on two processes under torchrun (gloo on CPU), only rank 0's outputs land in the profile's folders, and the other
rank's scratch folder is gone afterwards."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flowlib.artifacts import load_checkpoint
from flowlib.launch import main, nproc

ROOT = Path(__file__).resolve().parents[1]


def test_two_processes_run_a_stage_and_only_rank_zero_writes(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env |= {"FLOWLIB_SMOKE": "1", "FLOWLIB_SMOKE_DIR": str(tmp_path), "FLOWLIB_NPROC": "2", "FLOWLIB_DEVICE": "cpu",
            "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    out = tmp_path / "01_teacher-moons.ipynb"
    proc = subprocess.run([sys.executable, "-m", "flowlib.launch", "notebooks/01_teacher.ipynb", str(out), "-p", "teacher",
                           "moons", "--cwd", "notebooks", "--log-level", "WARNING"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.exists()
    teacher = tmp_path / "artifacts" / "teachers" / "moons"
    assert {"teacher.pt", "ground_truth.pt", "reference.pt", "last.pt"} <= {p.name for p in teacher.iterdir()}
    assert not any(p.is_symlink() for p in teacher.iterdir())   # rank 1 wrote only through its own scratch links
    assert load_checkpoint(teacher / "teacher.pt")["meta"]["steps"] > 0
    assert not list((tmp_path / "tmp").glob("flowlib-rank1-*"))  # rank 1's scratch is removed


def test_bad_process_count_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("FLOWLIB_NPROC", "two")
    with pytest.raises(SystemExit, match="FLOWLIB_NPROC.*whole number"):
        nproc()
    assert main([]) == 2  # usage
