import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import write_fashion_files, write_idx
from flowlib.data import DATASETS, DatasetError, load_cifar10, load_dataset


@pytest.mark.parametrize("name", ["8gaussians", "moons", "checkerboard"])
def test_toys(name):
    ds = load_dataset(name, n_toy=1000)
    assert ds.train.shape == (1000, 2) and ds.heldout.shape == (1000, 2) and ds.shape == (2,)
    assert not ds.is_image and torch.isfinite(ds.train).all()
    assert ds.train.std() > 0.3 and ds.train.abs().max() < 6
    assert not torch.equal(ds.train, ds.heldout)
    again = load_dataset(name, n_toy=1000)
    assert torch.equal(ds.train, again.train)  # deterministic
    batch = ds.sample_batch(64, torch.Generator().manual_seed(0))
    assert batch.shape == (64, 2)
    assert torch.equal(batch, ds.sample_batch(64, torch.Generator().manual_seed(0)))


def test_digits_split_shapes_ranges_and_determinism():
    ds = load_dataset("digits")
    assert ds.train.shape == (1198, 1, 8, 8) and ds.heldout.shape == (599, 1, 8, 8) and ds.is_image
    assert ds.train.min() == -1 and ds.train.max() == 1
    again = load_dataset("digits")
    assert torch.equal(ds.train, again.train) and torch.equal(ds.heldout, again.heldout)
    other = load_dataset("digits", seed=1)
    assert not torch.equal(ds.heldout, other.heldout)
    # the split is a partition: no held-out image is also a training image at the same index set
    all_imgs = torch.cat([ds.train, ds.heldout]).flatten(1)
    assert len(all_imgs) == 1797


def test_unknown_dataset():
    with pytest.raises(DatasetError, match="Unknown dataset 'mnist'.*digits"):
        load_dataset("mnist")
    assert "cifar10" in DATASETS


def _write_batch(path, n, seed):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    with open(path, "wb") as f:
        pickle.dump({b"data": data, b"labels": rng.integers(0, 10, n).tolist()}, f)  # as the official archive
    return data


def test_cifar10_python_batches(tmp_path):
    batches = tmp_path / "cifar10" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    first = _write_batch(batches / "data_batch_1", 3, 0)
    for i in range(2, 6):
        _write_batch(batches / f"data_batch_{i}", 3, i)
    _write_batch(batches / "test_batch", 2, 9)
    ds = load_dataset("cifar10", root=tmp_path)
    assert ds.train.shape == (15, 3, 32, 32) and ds.heldout.shape == (2, 3, 32, 32)
    assert ds.train.min() >= -1 and ds.train.max() <= 1
    # pixel (c=1, y=2, x=3) of image 0 maps from uint8 to [-1, 1]
    assert ds.train[0, 1, 2, 3].item() == pytest.approx(first[0, 1024 + 2 * 32 + 3] / 255 * 2 - 1, abs=1e-6)


def test_cifar10_png_folders(tmp_path):
    for split, n in (("train", 4), ("test", 2)):
        folder = tmp_path / split / "cat"
        folder.mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((32, 32, 3), 10 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    ds = load_cifar10(tmp_path)
    assert ds.train.shape == (4, 3, 32, 32) and ds.heldout.shape == (2, 3, 32, 32)
    assert ds.train[0].max().item() == -1.0


def test_cifar10_missing_or_corrupt(tmp_path):
    with pytest.raises(DatasetError, match="not found.*cifar-10-python.tar.gz"):
        load_dataset("cifar10", root=tmp_path)
    batches = tmp_path / "cifar10" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    _write_batch(batches / "data_batch_1", 2, 0)
    with pytest.raises(DatasetError, match="incomplete.*data_batch_2"):
        load_dataset("cifar10", root=tmp_path)
    for i in range(2, 6):
        _write_batch(batches / f"data_batch_{i}", 2, i)
    (batches / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="test_batch is not a readable CIFAR-10"):
        load_dataset("cifar10", root=tmp_path)


def test_cifar10_binary_archive(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    rng = np.random.default_rng(0)
    records = {name: rng.integers(0, 256, size=(n, 3073), dtype=np.uint8)
               for name, n in [(f"data_batch_{i}.bin", 2) for i in range(1, 6)] + [("test_batch.bin", 3)]}
    for name, rec in records.items():
        rec.tofile(folder / name)
    ds = load_cifar10(tmp_path)
    assert ds.train.shape == (10, 3, 32, 32) and ds.heldout.shape == (3, 3, 32, 32)
    first = records["data_batch_1.bin"][0]
    assert ds.train[0, 2, 31, 31].item() == pytest.approx(first[1 + 3071] / 255 * 2 - 1, abs=1e-6)  # label byte skipped
    (folder / "test_batch.bin").write_bytes(b"\0" * 100)
    with pytest.raises(DatasetError, match="not a whole number of 3,073-byte"):
        load_cifar10(tmp_path)


def test_cifar10_batch_runs_no_code(tmp_path, pickle_payload):
    batches = tmp_path / "cifar10" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    for i in range(1, 6):
        _write_batch(batches / f"data_batch_{i}", 2, i)
    payload_object, target = pickle_payload
    with open(batches / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1], b"x": payload_object}, f)
    with pytest.raises(DatasetError, match="test_batch is not a readable.*refusing to load .*open"):
        load_dataset("cifar10", root=tmp_path)
    assert not target.exists()


# ------------------------------------------------------------------------------------------ Fashion-MNIST
@pytest.mark.parametrize("gz", [True, False])
def test_fashion_reads_the_idx_files_exactly(tmp_path, gz):
    from flowlib.data import fashion_labels, heldout_size

    arrays = write_fashion_files(tmp_path / "fashion-mnist", gz=gz)
    ds = load_dataset("fashion", tmp_path)
    assert ds.shape == (1, 28, 28) and ds.is_image and (len(ds.train), len(ds.heldout)) == (12, 5)
    pixels = arrays["train-images-idx3-ubyte"]
    assert torch.equal(ds.train[:, 0], torch.as_tensor(pixels, dtype=torch.float32) / 255.0 * 2.0 - 1.0)
    assert float(ds.train.min()) >= -1 and float(ds.train.max()) <= 1
    train_y, test_y = fashion_labels(tmp_path / "fashion-mnist")
    assert train_y.tolist() == arrays["train-labels-idx1-ubyte"].tolist() and len(test_y) == 5
    assert heldout_size("fashion") == 10_000 and "fashion" in DATASETS


def test_fashion_falls_back_to_debians_folder_and_says_how_to_get_it(tmp_path, monkeypatch):
    import flowlib.data as data

    monkeypatch.setattr(data, "DEBIAN_FASHION", tmp_path / "nowhere")
    with pytest.raises(DatasetError, match=r"apt-get install dataset-fashion-mnist.*or copy the four files"):
        load_dataset("fashion", tmp_path)
    write_fashion_files(tmp_path / "debian", n_train=3, n_test=2)
    monkeypatch.setattr(data, "DEBIAN_FASHION", tmp_path / "debian")
    assert len(load_dataset("fashion", tmp_path).train) == 3  # nothing under data/: Debian's files are used


def test_fashion_refuses_corrupt_or_truncated_files(tmp_path, monkeypatch):
    import flowlib.data as data

    monkeypatch.setattr(data, "DEBIAN_FASHION", tmp_path / "nowhere")
    folder = tmp_path / "fashion-mnist"
    write_fashion_files(folder)
    images = folder / "train-images-idx3-ubyte.gz"
    raw = images.read_bytes()
    images.write_bytes(raw[: len(raw) // 2])  # a cut download: the gzip stream ends early
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte.gz is not a readable IDX file"):
        load_dataset("fashion", tmp_path)
    write_idx(images, np.zeros((4, 28, 28)), gz=True)
    import gzip
    images.write_bytes(gzip.compress(gzip.decompress(images.read_bytes())[:-10]))  # header says more than it holds
    with pytest.raises(DatasetError, match=r"announces shape \(4, 28, 28\) but the file holds 3126 values"):
        load_dataset("fashion", tmp_path)
    images.write_bytes(b"PK\x03\x04not an idx file")
    with pytest.raises(DatasetError, match="not an IDX file of unsigned bytes"):
        load_dataset("fashion", tmp_path)
    write_idx(images, np.zeros((4, 32, 32)))
    with pytest.raises(DatasetError, match=r"expected images of shape \[N, 28, 28\], got \(4, 32, 32\)"):
        load_dataset("fashion", tmp_path)
