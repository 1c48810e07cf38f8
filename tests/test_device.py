"""The device setting, bf16, chunked evaluation and seeded noise: what makes one pipeline run on a CPU or a GPU.

Without CUDA the GPU tests (marked `gpu`) are skipped; everything else runs here, the CUDA answers of torch patched where
a test needs a machine with GPUs."""
from pathlib import Path

import pytest
import torch
import yaml

from flowlib import AdaptiveSampler, ODESampler, TrainConfig, TrainData, build_model, train_teacher
from flowlib.config import ConfigError, parse_params
from flowlib.data import load_dataset
from flowlib.device import DeviceError, bf16_supported, check_precision, chunked, resolve_device, seeded_noise, shard, sharding
from flowlib.evaluate import evaluate, sample_in_chunks
from flowlib.metrics import SlicedW2

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RAW = yaml.safe_load((ROOT / "params.yaml").read_text())

MLP = {"arch": "mlp", "hidden": 32, "depth": 3}
gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture
def no_override(monkeypatch):
    monkeypatch.delenv("FLOWLIB_DEVICE", raising=False)


def test_auto_and_cpu_resolve_on_a_machine_without_cuda(no_override, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("spec", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu_names_the_fix(no_override, monkeypatch, spec):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="no CUDA GPU.*device: auto.*FLOWLIB_DEVICE=cpu"):
        resolve_device(spec)


def test_a_gpu_index_beyond_the_count_names_the_range(no_override, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(DeviceError, match="cuda:7 does not exist.*1 GPU.*cuda:0 to cuda:0"):
        resolve_device("cuda:7")
    assert resolve_device("cuda") == torch.device("cuda", 0)
    monkeypatch.setenv("LOCAL_RANK", "3")  # under torchrun a plain `cuda` is the process's own GPU
    with pytest.raises(DeviceError, match="cuda:3 does not exist"):
        resolve_device("auto")


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "CUDA", "cpu:0"])
def test_a_malformed_device_is_refused(monkeypatch, spec):
    monkeypatch.setenv("FLOWLIB_DEVICE", spec)
    with pytest.raises(DeviceError, match="auto, cpu, cuda or cuda:N.*FLOWLIB_DEVICE"):
        resolve_device("cpu")
    monkeypatch.delenv("FLOWLIB_DEVICE")
    with pytest.raises(DeviceError, match="from params"):
        resolve_device(spec)


def test_the_environment_overrides_params(monkeypatch):
    monkeypatch.setenv("FLOWLIB_DEVICE", "cpu")
    params = parse_params({**DEFAULT_RAW, "device": "cuda:3"}, root=ROOT)
    assert params.torch_device == torch.device("cpu")


def test_params_schema_checks_the_device():
    with pytest.raises(ConfigError, match="device"):
        parse_params({**DEFAULT_RAW, "device": "tpu"}, root=ROOT)


def test_bf16_where_the_device_has_none_names_the_fix(monkeypatch):
    import flowlib.device as device

    monkeypatch.setattr(device, "bf16_supported", lambda d: False)
    with pytest.raises(DeviceError, match="bf16 is not supported on cpu.*precision: fp32"):
        check_precision("bf16", torch.device("cpu"))
    ds = load_dataset("moons", n_toy=256)
    with pytest.raises(DeviceError, match="precision: fp32"):
        train_teacher(build_model(ds.shape, MLP), TrainData(ds.sample_batch, 16), TrainConfig(steps=2, precision="bf16"),
                      progress=False)


def test_bf16_training_learns_as_fp32_does_on_a_cpu_with_bf16():
    if not bf16_supported(torch.device("cpu")):
        pytest.skip("this CPU has no bf16")
    ds = load_dataset("moons", n_toy=2000)
    final = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        result = train_teacher(build_model(ds.shape, MLP), TrainData(ds.sample_batch, 64),
                               TrainConfig(steps=60, lr=3e-3, warmup=5, log_every=20, precision=precision),
                               progress=False)
        final[precision] = result.history[-1][1]
        assert result.history[-1][1] < result.history[0][1]
        assert next(result.ema_model.parameters()).dtype == torch.float32  # autocast: the weights stay fp32
    assert final["bf16"] != final["fp32"]  # it did run in bf16
    assert abs(final["bf16"] - final["fp32"]) < 0.1 * final["fp32"]


def test_seeded_noise_is_the_same_numbers_wherever_it_goes():
    a, b = seeded_noise(5, (2,), 3), seeded_noise(5, (2,), 3, "cpu")
    assert torch.equal(a, b) and torch.equal(a, torch.randn(5, 2, generator=torch.Generator().manual_seed(3)))


def test_chunked_equals_whole_for_a_fixed_grid_sampler():
    torch.manual_seed(0)
    net = build_model((2,), MLP).eval().requires_grad_(False)
    noise = seeded_noise(1000, (2,), 1)
    sampler = ODESampler.uniform(net, 8, "heun")
    whole = sampler(noise)
    parts, nfe = sample_in_chunks(sampler, noise, 128)
    assert torch.equal(parts, whole) and nfe == 8
    assert torch.equal(chunked(sampler, noise, 333), whole)


def test_chunked_evaluation_rows_equal_the_unchunked_ones():
    torch.manual_seed(0)
    net = build_model((2,), MLP).eval().requires_grad_(False)
    noise, data = seeded_noise(300, (2,), 1), seeded_noise(1000, (2,), 2)
    gt = AdaptiveSampler(net)(noise)
    kw = dict(metric=SlicedW2(data), dataset="toy", teacher="t", method="baseline", ground_truth=gt, bootstrap=3,
              timing_repeats=1, latency_batch=16)
    whole = evaluate(ODESampler.uniform(net, 4, "midpoint"), noise, **kw)
    part = evaluate(ODESampler.uniform(net, 4, "midpoint"), noise, chunk=64, **kw)
    for key in ("nfe", "quality", "quality_std", "rmse_to_gt"):
        assert part[key] == whole[key], key


def test_the_adaptive_sampler_in_chunks_reports_its_largest_nfe():
    net = lambda x, t: -x * (1 + 10 * (x.abs() > 2))  # noqa: E731  stiffer for large |x|: chunks need different steps
    noise = torch.cat([seeded_noise(8, (2,), 0) * 0.1, seeded_noise(8, (2,), 1) * 5])
    sampler = AdaptiveSampler(net)
    _, nfe = sample_in_chunks(sampler, noise, 8)
    sampler(noise[:8])
    small = sampler.nfe
    sampler(noise[8:])
    assert nfe == max(small, sampler.nfe) and small != sampler.nfe


def test_shard_splits_a_global_batch_and_refuses_an_uneven_one():
    x = torch.arange(8)
    assert shard(x)[0] is x  # outside a data-parallel step: everything
    with sharding(1, 2):
        assert shard(x)[0].tolist() == [4, 5, 6, 7]
    with sharding(0, 3), pytest.raises(DeviceError, match="8 does not split evenly over 3.*multiple of 3"):
        shard(x)


@pytest.mark.gpu
@gpu
def test_a_teacher_trains_and_samples_on_the_gpu_like_on_the_cpu():
    ds = load_dataset("moons", n_toy=2000)
    runs = {}
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        net = build_model(ds.shape, MLP).to(device)
        result = train_teacher(net, TrainData(ds.sample_batch, 128, ds.heldout[:256]),
                               TrainConfig(steps=100, warmup=10, val_every=50), progress=False)
        noise = seeded_noise(512, ds.shape, 1, device)
        runs[device] = ODESampler.uniform(result.ema_model, 8, "heun")(noise).cpu()
    assert (runs["cpu"] - runs["cuda"]).abs().max() < 5e-2  # TF32 on the GPU: close, not equal


@pytest.mark.gpu
@gpu
def test_bf16_and_chunked_evaluation_on_the_gpu():
    ds = load_dataset("moons", n_toy=2000)
    net = build_model(ds.shape, MLP).cuda()
    result = train_teacher(net, TrainData(ds.sample_batch, 128), TrainConfig(steps=100, warmup=10, precision="bf16"),
                           progress=False)
    noise = seeded_noise(3000, ds.shape, 1, "cuda")
    sampler = ODESampler.uniform(result.ema_model, 4, "euler")
    assert torch.allclose(sample_in_chunks(sampler, noise, 500)[0], sampler(noise), atol=1e-5)
