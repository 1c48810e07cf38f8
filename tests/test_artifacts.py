import pytest
import torch

from flowlib.artifacts import CheckpointError, atomic_path, load_checkpoint, save_checkpoint


def test_round_trip(tmp_path):
    obj = {"w": torch.arange(6.0).view(2, 3), "meta": {"step": 7}}
    path = save_checkpoint(obj, tmp_path / "ckpt.pt")
    back = load_checkpoint(path)
    assert torch.equal(back["w"], obj["w"]) and back["meta"] == {"step": 7}
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temp file left behind


def test_truncated_checkpoint_is_reported(tmp_path):
    path = save_checkpoint({"w": torch.randn(100)}, tmp_path / "ckpt.pt")
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="truncated.*dvc repro teacher"):
        load_checkpoint(path, rebuild_hint="dvc repro teacher@digits")
    path.write_bytes(b"FLOW")
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


def test_corrupt_checkpoint_is_reported(tmp_path):
    path = save_checkpoint({"w": torch.randn(100)}, tmp_path / "ckpt.pt")
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupt.*checksum"):
        load_checkpoint(path)


def test_foreign_and_missing_files(tmp_path):
    torch.save({"w": 1}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a flowlib checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_that_would_run_code_is_rejected(tmp_path, pickle_payload):
    import hashlib
    import io

    from flowlib.artifacts import _HEADER, MAGIC

    payload_object, target = pickle_payload
    buffer = io.BytesIO()
    torch.save({"state_dict": {"w": torch.ones(3)}, "meta": payload_object}, buffer)
    payload = buffer.getvalue()
    path = tmp_path / "teacher.pt"
    path.write_bytes(_HEADER.pack(MAGIC, hashlib.sha256(payload).digest(), len(payload)) + payload)  # valid header
    with pytest.raises(CheckpointError, match=r"teacher.pt contains executable objects.*io.open.*nothing from it was run"):
        load_checkpoint(path, rebuild_hint="dvc repro teacher@digits")
    assert not target.exists()


def test_save_refuses_what_weights_only_loading_rejects(tmp_path):
    import numpy as np

    with pytest.raises(CheckpointError, match="Refusing to write.*numpy"):
        save_checkpoint({"accuracy": np.float64(0.9)}, tmp_path / "ckpt.pt")
    assert list(tmp_path.iterdir()) == []
    plain = {"w": torch.ones(2), "meta": {"steps": 3, "loss": 0.5, "name": "x", "shape": [1, 8, 8], "none": None},
             "history": [(1, 0.5)], "dtype": torch.float32}
    back = load_checkpoint(save_checkpoint(plain, tmp_path / "ok.pt"))
    assert back["meta"] == plain["meta"] and back["history"] == [(1, 0.5)] and back["dtype"] is torch.float32
