"""Pipeline steps shared by the notebooks: where artefacts live, the quality metric of each dataset,
teacher training, ground truth and the baseline sweep. Each notebook is a few calls into this module.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..artifacts import CheckpointError, load_checkpoint, run_metadata, save_checkpoint, sha256_file, write_json, write_text
from ..claims import compare_paired
from ..config import Params, TeacherParams
from ..data import CLASSIFIER_DATASETS, IMAGE_DATASETS, Dataset, dataset_labels, exact_mixture, load_dataset
from ..device import seeded_noise
from ..diffusers_bridge import DiffusersSampler
from ..evaluate import TeacherReference, data_row, evaluate, headline_metrics, sample_in_chunks
from ..flow import TrainData, rebuild_net, save_velocity_model, train_teacher
from ..latent import (
    DecodedFeatures,
    LatentDataset,
    LatentError,
    encode,
    latent_dataset,
    load_autoencoder,
    save_autoencoder,
    train_autoencoder,
)
from ..metrics import (
    FID,
    ClassifierFeatures,
    FeatureClassifier,
    FeatureExtractor,
    InceptionFeatures,
    QualityMetric,
    RandomFourierFeatures,
    SlicedW2,
    gaussian_stats,
    per_sample_rmse,
    redraw_std,
)
from ..metrics import (
    train_feature_classifier as fit_classifier,
)
from ..models import build_model, count_parameters
from ..models.autoencoder import ConvAutoencoder
from ..solvers import AdaptiveSampler, ODESampler, Sampler
from ..solvers.fixed_grid import get_tableau
from ..train_data import DataSampler

PAIRED_SAMPLES = 1000  # evaluation noises behind the paired RMSE comparisons of the claims
TEACHER_VAL = 2048     # held-out points behind the teacher's validation loss (all of them for digits: 599)
FLOOR_N = 5000         # held-out images behind an autoencoder's decoder floor in the autoencoders stage


# ------------------------------------------------------------------------------------------- locations
# Every path comes from params.layout (flowlib.layout); these three are the notebooks' shorthand for it.
def results_path(params: Params, stage: str) -> Path:
    return params.layout.results(stage)


def metrics_path(params: Params, stage: str) -> Path:
    return params.layout.metrics(stage)


def figure_path(params: Params, name: str) -> Path:
    return params.layout.figure(name)


def rebuild_hint(stage: str) -> str:
    return f"dvc repro {stage}   (or run notebooks/ in order)"


# ----------------------------------------------------------------------------------------------- data
def dataset_for(params: Params, name: str) -> Dataset:
    return load_dataset(name, params.data.root, heldout_fraction=params.data.heldout_fraction,
                        n_toy=params.data.n_toy, seed=params.data.seed)


def teacher_dataset(params: Params, name: str) -> Dataset:
    """What teacher `name` learns: its dataset, or for a latent teacher (`latent:`) that dataset's standardised latents
    under its autoencoder (a `LatentDataset`, which decodes)."""
    tp = params.teacher(name)
    images = dataset_for(params, tp.dataset)
    if tp.latent is None:
        return images
    ap = params.autoencoders[tp.latent]
    autoencoder = load_autoencoder(params.layout.autoencoder(tp.latent), rebuild_hint("autoencoders"), dataset=tp.dataset,
                                   latent_dim=ap.latent_dim).to(params.torch_device)
    return latent_dataset(autoencoder, images)


def teacher_shape(params: Params, name: str) -> tuple[int, ...]:
    """The shape of one sample of teacher `name` (a latent teacher: its flat latent), without encoding any data."""
    tp = params.teacher(name)
    return (params.autoencoders[tp.latent].latent_dim,) if tp.latent else dataset_for(params, tp.dataset).shape


def classifier_datasets(params: Params) -> list[str]:
    """The labelled grey datasets whose Fréchet distance needs a classifier: digits (always: the data stage's figure and
    the default teachers) and every other one a teacher of this profile uses (Fashion-MNIST)."""
    used = {params.teacher(name).dataset for name in params.teachers}
    return ["digits"] + [d for d in CLASSIFIER_DATASETS if d != "digits" and d in used]


def train_feature_classifier(params: Params) -> dict[str, Any]:
    """Train and save the classifier of each `classifier_datasets` entry, whose features define `fid-<name>-classifier`.

    Returns the data stage's metrics: `clf_acc` and `clf_s` (held-out accuracy, training seconds) for digits, and
    `clf_acc_<name>`, `clf_s_<name>` for the others."""
    summary: dict[str, Any] = {}
    for name in classifier_datasets(params):
        dataset = dataset_for(params, name)
        y_train, y_held = dataset_labels(name, params.data.root, heldout_fraction=params.data.heldout_fraction,
                                         seed=params.data.seed)
        start = time.perf_counter()
        clf = fit_classifier(dataset.train, y_train, steps=params.data.classifier_steps, seed=params.data.seed)
        seconds = time.perf_counter() - start
        with torch.no_grad():
            accuracy = float(torch.cat([(clf(x).argmax(1) == y).float() for x, y in
                                        zip(dataset.heldout.split(2048), y_held.split(2048))]).mean())
        save_checkpoint({"state_dict": clf.state_dict(), "heldout_accuracy": accuracy, "image_size": dataset.shape[-1]},
                        params.layout.classifier(name))
        suffix = "" if name == "digits" else f"_{name}"
        summary |= {f"clf_acc{suffix}": accuracy, f"clf_s{suffix}": seconds}
    return summary


def feature_extractor(params: Params, dataset: Dataset) -> FeatureExtractor:
    """The FID feature space of an image dataset: its classifier (digits, Fashion-MNIST), or Inception from its local file;
    for a latent dataset, the same space after decoding."""
    if isinstance(dataset, LatentDataset):
        return DecodedFeatures(dataset, feature_extractor(params, dataset.pixels))
    if dataset.name in CLASSIFIER_DATASETS:
        state = load_checkpoint(params.layout.classifier(dataset.name), rebuild_hint("data"))
        clf = FeatureClassifier(dataset.shape[-1])
        clf.load_state_dict(state["state_dict"])
        return ClassifierFeatures(clf.to(params.torch_device), f"fid-{dataset.name}-classifier", params.eval.chunk)
    return InceptionFeatures(params.data.inception_weights, params.data.inception_sha256, str(params.torch_device),
                             params.eval.chunk or 100)


def image_datasets(params: Params) -> list[str]:
    """The image datasets the profile's teachers learn (their FID reference statistics are a data-stage output)."""
    return sorted({tp.dataset for tp in params.teachers.values() if tp.dataset in IMAGE_DATASETS})


def save_reference_statistics(params: Params) -> dict[str, int]:
    """Compute once, in the data stage, each image dataset's training-split mean and covariance in its FID feature space
    (Inception on CIFAR-10: one pass over 50,000 images), so no later stage recomputes them. Returns the sizes."""
    sizes = {}
    for name in image_datasets(params):
        dataset = dataset_for(params, name)
        extractor = feature_extractor(params, dataset)
        mu, sigma = gaussian_stats(extractor(dataset.train))
        save_checkpoint({"mu": torch.from_numpy(mu), "sigma": torch.from_numpy(sigma), "metric": extractor.metric_name,
                         "n": len(dataset.train)}, params.layout.feature_stats(name))
        sizes[f"ref_n_{name}"] = len(dataset.train)
    return sizes


def fit_autoencoder(params: Params, name: str, progress: bool = True) -> dict[str, Any]:
    """Train autoencoder `name` to its validation plateau (resuming when the config matches), standardise its latents
    on the training split and save it; then score its **decoder floor**: the distance to the data of decoded held-out
    latents, beside real held-out images, both on the first `FLOOR_N` held-out images (the baselines stage scores both
    again at each latent teacher's `n_eval`)."""
    ap = params.autoencoders[name]
    images = dataset_for(params, ap.dataset)
    torch.manual_seed(ap.train.seed)
    model = ConvAutoencoder(images.shape, ap.latent_dim, ap.width).to(params.torch_device)
    out = params.layout.autoencoder(name).parent
    data = TrainData(DataSampler(images.sample_batch), ap.batch_size, images.heldout[:TEACHER_VAL])
    result = train_autoencoder(model, data, ap.train, ckpt_dir=out, progress=progress,
                               run_config={"dataset": ap.dataset, "latent_dim": ap.latent_dim, "width": ap.width})
    autoencoder = result.ema_model.eval()
    autoencoder.set_normalisation(images.train)
    n = min(len(images.heldout), FLOOR_N)
    latents = latent_dataset(autoencoder, images)
    metric = quality_metric(params, images)
    info = {"autoencoder": name, "dataset": ap.dataset, "latent_dim": ap.latent_dim, "params": count_parameters(autoencoder),
            "steps": result.steps, "converged": result.converged, "best_step": result.best_step,
            "val_mse": result.best_value, "train_seconds": result.seconds, "train_flops": result.flops, "n": n,
            "decoder_floor": metric.score(DecodedFeatures(latents, metric.extractor)(latents.heldout[:n])),
            "real_heldout": metric(images.heldout[:n]), "metric": metric.name}
    save_autoencoder(params.layout.autoencoder(name), autoencoder, ap.dataset, info)
    return {**info, "val_history": result.val_history, "history": result.history}


def fit_autoencoders(params: Params) -> dict[str, dict[str, Any]]:
    """Every autoencoder of the profile fitted (`fit_autoencoder`), and the stage's index of them written (the stage's
    output even in a profile without autoencoders)."""
    runs = {name: fit_autoencoder(params, name) for name in params.autoencoders}
    params.layout.autoencoders_dir().mkdir(parents=True, exist_ok=True)
    write_json(params.layout.autoencoders_dir() / "index.json", sorted(runs))
    return runs


def autoencoder_table(runs: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per autoencoder: its run's numbers without the curves."""
    return pd.DataFrame([{k: v for k, v in run.items() if k not in ("history", "val_history")} for run in runs.values()])


def autoencoder_metrics(runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The stage's headline numbers per autoencoder (`dvc metrics show`)."""
    return {f"{key}_{name}": run[key] for name, run in runs.items()
            for key in ("decoder_floor", "real_heldout", "val_mse", "steps", "train_seconds")}


def autoencoder_figures(params: Params, runs: dict[str, dict[str, Any]], n: int = 32) -> list[Any]:
    """Per autoencoder: real held-out images beside their reconstructions, and the held-out reconstruction error during
    training, in reports/figures/autoencoders/ with an index page (the folder exists, with its index, in a profile without
    autoencoders)."""
    from ..plots import plot_sample_panels, plot_training_curves

    params.layout.figure("autoencoders/-").parent.mkdir(parents=True, exist_ok=True)
    figures = []
    for name, run in runs.items():
        images = dataset_for(params, run["dataset"]).heldout[:n]
        autoencoder = load_autoencoder(params.layout.autoencoder(name)).to(params.torch_device)
        with torch.no_grad():
            rebuilt = autoencoder.decode(encode(autoencoder, images).to(params.torch_device)).cpu()
        figures.append(plot_sample_panels({"real held-out": images, "through the autoencoder": rebuilt},
                                          params.layout.figure(f"autoencoders/{name}-reconstructions")))
        figures.append(plot_training_curves(validation_curve(run["val_history"], name, "held-out reconstruction MSE"),
                                            params.layout.figure(f"autoencoders/{name}-validation"),
                                            f"autoencoder {name}: training to the plateau"))
    index = "\n".join(f"![{f.path.stem}]({f.path.name})" for f in figures) or "No autoencoders in this profile."
    write_text(params.layout.figure("autoencoders/README").with_suffix(".md"), f"# Stage autoencoders\n\n{index}\n")
    return figures


def quality_metric(params: Params, dataset: Dataset, extractor: FeatureExtractor | None = None) -> QualityMetric:
    """The dataset's quality metric: sliced W2 (toys), classifier FID (digits, Fashion-MNIST), Inception FID (CIFAR-10),
    the images' against the data stage's reference statistics (`save_reference_statistics`).

    `extractor`: the image feature space when already built (it is shared with `gt_distance_metric`)."""
    if not dataset.is_image:
        return SlicedW2(dataset.train)
    extractor = extractor or feature_extractor(params, dataset)
    stats = load_checkpoint(params.layout.feature_stats(dataset.name), rebuild_hint("data"))
    if stats.get("metric") != extractor.metric_name:
        raise CheckpointError(f"{params.layout.feature_stats(dataset.name)} holds {stats.get('metric')} statistics, not "
                              f"{extractor.metric_name}; rebuild them with: {rebuild_hint('data')}")
    return FID(extractor, (stats["mu"].numpy(), stats["sigma"].numpy()))


def gt_distance_metric(params: Params, dataset: Dataset, reference: Tensor,
                       extractor: FeatureExtractor | None = None) -> QualityMetric:
    """The distance to the teacher's own distribution (`reference`: its ground-truth samples at n_ref).

    Images: the Fréchet distance in the same feature space as the quality metric. Points: the Fréchet distance
    in random Fourier features of them (`RandomFourierFeatures`; sliced W2 is too noisy at this n).
    """
    if not dataset.is_image:
        extractor = RandomFourierFeatures(reference.shape[1])
    extractor = extractor or feature_extractor(params, dataset)
    return FID(extractor, reference, name="fd-to-gt-" + extractor.metric_name.split("-", 1)[1])


def inception_status(params: Params) -> dict[str, Any]:
    """Whether the Inception weights are present, and their SHA-256 (recorded for the paper profile)."""
    path = Path(params.data.inception_weights)
    return {"path": str(path), "present": path.is_file(), "sha256": sha256_file(path) if path.is_file() else None}


# -------------------------------------------------------------------------------------------- teachers
def eval_noise(params: Params, tp: TeacherParams, shape: tuple[int, ...]) -> Tensor:
    """The fixed evaluation noise of a teacher (same seed for every method, so RMSE to GT is paired), on the CPU."""
    return seeded_noise(tp.n_eval, shape, params.eval.seed)


def fit_teacher(params: Params, name: str, progress: bool = True) -> dict[str, Any]:
    """Train teacher `name` (resuming from its last checkpoint if the config matches) and save its EMA net.

    An exact teacher (`model: {arch: mixture}`) trains nothing: its closed-form field is saved as the teacher."""
    tp = params.teacher(name)
    dataset = teacher_dataset(params, name)
    if tp.exact:
        model = exact_mixture(tp.dataset).to(params.torch_device)
        info = {"teacher": name, "dataset": tp.dataset, "params": 0, "train_seconds": 0.0, "steps": 0,
                "final_loss": None, "resumed_from": None, "train_flops": 0.0, "converged": None}
        save_velocity_model(params.layout.teacher(name), model, model.config(), dataset.shape, **info)
        write_json(params.layout.teacher(name, "meta.json"), {**info, "history": [], "val_history": [], **run_metadata()})
        return {**info, "history": [], "val_history": []}
    torch.manual_seed(tp.train.seed)  # the initial weights too: torch's default seed differs per process
    model = build_model(dataset.shape, tp.model_dict).to(params.torch_device)
    out = params.layout.stage("teachers", name)  # also the resume folder (last.pt)
    data = TrainData(DataSampler(dataset.sample_batch), tp.batch_size, dataset.heldout[:TEACHER_VAL])
    result = train_teacher(model, data, tp.train, ckpt_dir=out,
                           run_config={"model": tp.model_dict, "dataset": tp.dataset, "batch": tp.batch_size},
                           progress=progress)
    info = {"teacher": name, "dataset": tp.dataset, "params": count_parameters(model), "train_seconds": result.seconds,
            "steps": result.steps, "final_loss": result.history[-1][1] if result.history else None,
            "resumed_from": result.resumed_from, "train_flops": result.flops, "converged": result.converged,
            "latent": tp.latent, "latent_sha256": latent_fingerprint(params, tp.latent) if tp.latent else None}
    save_velocity_model(params.layout.teacher(name), result.ema_model, tp.model_dict, dataset.shape, **info)
    write_json(params.layout.teacher(name, "meta.json"), {**info, "history": result.history, "val_history": result.val_history,
                                                          **run_metadata()})
    return {**info, "history": result.history, "val_history": result.val_history}


class Trained(Protocol):
    """What a trained component reports (a `TrainResult`, a Bespoke result, an FGM run)."""

    steps: int
    converged: bool | None
    best_step: int
    flops: float


def training_columns(result: Trained) -> dict[str, Any]:
    """How a row's learned component was trained, as result-table columns: steps taken, whether the validation
    plateau came before the cap (`converged`), the best validation step, and the training cost in FLOPs."""
    return {"train_steps": int(result.steps), "converged": result.converged, "best_step": int(result.best_step),
            "train_flops": float(result.flops)}


def validation_curve(history: list[tuple[int, float]], run: str, curve: str) -> pd.DataFrame:
    """A run's validation scores as the long table `flowlib.plots.plot_training_curves` draws (step, value, run, curve)."""
    return pd.DataFrame(history, columns=["step", "value"]).assign(run=run, curve=curve)


def load_teacher(params: Params, name: str) -> nn.Module:
    """The trained teacher `name`, on the profile's device. A latent teacher must have been trained on the latents of the
    autoencoder file there now (a retrained autoencoder has other latents: the teacher is refused, naming its stage)."""
    hint, path = rebuild_hint(f"teacher@{name}"), params.layout.teacher(name)
    state = load_checkpoint(path, hint, kind="velocity")
    model = rebuild_net(state, path, hint).eval().requires_grad_(False).to(params.torch_device)
    latent = params.teacher(name).latent
    if latent is not None:
        trained_on = state["meta"].get("latent_sha256")
        if trained_on != latent_fingerprint(params, latent):
            raise LatentError(f"Teacher {name!r} was trained on the latents of {'another' if trained_on else 'no'} "
                              f"autoencoder than {params.layout.autoencoder(latent)} (retrained since?); its flow does not "
                              f"fit these latents. Retrain it with: {hint}")
    return model


def latent_fingerprint(params: Params, autoencoder: str) -> str:
    """The SHA-256 of an autoencoder's file (what a latent teacher records it was trained on)."""
    path = params.layout.autoencoder(autoencoder)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist. Build it with: {rebuild_hint('autoencoders')}")
    return sha256_file(path)


def solve_ground_truth(params: Params, name: str) -> dict[str, Any]:
    """Solve the teacher ODE from the evaluation noise with dopri5 and cache (noise, samples, nfe, time)."""
    tp = params.teacher(name)
    model = load_teacher(params, name)
    noise = eval_noise(params, tp, teacher_shape(params, name))
    sampler = AdaptiveSampler(model, params.eval.gt_rtol, params.eval.gt_atol)
    start = time.perf_counter()
    samples, nfe = sample_in_chunks(sampler, noise.to(params.torch_device), params.eval.chunk)
    samples = samples.cpu()  # checkpoints stay device-free
    info = {"nfe": nfe, "seconds": time.perf_counter() - start, "rtol": params.eval.gt_rtol, "atol": params.eval.gt_atol}
    save_checkpoint({"noise": noise, "samples": samples, **info}, params.layout.teacher(name, "ground_truth.pt"),
                    kind="ground_truth")
    return info


def solve_reference(params: Params, name: str, progress: bool = True) -> dict[str, Any]:
    """The teacher's own distribution at large n: ground truth on `eval.n_ref` reference noises, and on the
    `eval.n_ref` distance noises every sampler also runs on (the floor). Cached as reference.pt."""
    model = load_teacher(params, name)
    shape = teacher_shape(params, name)
    sampler = AdaptiveSampler(model, params.eval.gt_rtol, params.eval.gt_atol)
    out, start = {}, time.perf_counter()
    for key, seed in tqdm([("reference", params.eval.reference_seed), ("floor", params.eval.distance_seed)],
                          desc=f"reference {name}", disable=not progress):
        noise = seeded_noise(params.eval.n_ref, shape, seed)
        out[key], nfe = sample_in_chunks(sampler, noise.to(params.torch_device), params.eval.chunk)
        out[key] = out[key].cpu()  # checkpoints stay device-free
        if key == "floor":
            out["noise"] = noise
    info = {"n_ref": params.eval.n_ref, "nfe": nfe, "seconds": time.perf_counter() - start}
    save_checkpoint({**out, **info}, params.layout.teacher(name, "reference.pt"))
    return info


@dataclass
class TeacherContext:
    """Everything a method notebook needs to evaluate samplers of one teacher."""

    name: str
    dataset: Dataset
    model: nn.Module
    metric: QualityMetric
    noise: Tensor
    ground_truth: Tensor
    gt_nfe: int
    train_seconds: float
    reference: TeacherReference
    bootstrap: int = 0
    train_flops: float = 0.0
    timing_repeats: int = 5
    latency_batch: int = 256
    chunk: int | None = None
    data_metric: QualityMetric | None = None  # real images' metric where `metric` decodes latents (a latent teacher)

    @property
    def device(self) -> torch.device:
        """Where the teacher, its noise and ground truth live (the profile's device)."""
        return self.noise.device

    def seeded_noise(self, n: int, seed: int) -> Tensor:
        """`n` noises of the data shape from `seed`, on this teacher's device (the same numbers on every device)."""
        return seeded_noise(n, self.dataset.shape, seed, self.device)

    def evaluate(self, sampler, *, method: str, **kw: Any) -> dict[str, Any]:
        """`flowlib.evaluate.evaluate` on this teacher's noise, metric, ground truth and reference; latency as
        `eval.timing_repeats` runs at batch `eval.latency_batch` (the same for every row of every stage)."""
        return evaluate(sampler, self.noise, metric=self.metric, dataset=self.dataset.name, teacher=self.name,
                        method=method, ground_truth=self.ground_truth, reference=self.reference,
                        bootstrap=self.bootstrap, timing_repeats=self.timing_repeats,
                        latency_batch=self.latency_batch, chunk=self.chunk, **kw)

    def paired_rmse(self, ours: Sampler, theirs: Sampler, sigmas: float, n: int = PAIRED_SAMPLES) -> str:
        """`compare_paired` of two samplers' per-sample RMSE to the ground truth on the first `n` evaluation noises."""
        noise, truth = self.noise[:n], self.ground_truth[:n]
        return compare_paired(per_sample_rmse(ours(noise), truth) - per_sample_rmse(theirs(noise), truth), sigmas)

    def data_rows(self) -> list[dict[str, Any]]:
        """Real held-out data scored like a sampler, at the evaluation sample size; for a latent teacher also the
        decoder floor (its autoencoder's reconstruction of those images: decoded held-out latents)."""
        n = len(self.noise)
        rows = [data_row(self.data_metric or self.metric, self.dataset.pixels.heldout[:n], dataset=self.dataset.name,
                         bootstrap=self.bootstrap)]
        if isinstance(self.dataset, LatentDataset):
            rows.append(data_row(self.metric, self.dataset.heldout[:n], dataset=self.dataset.name,
                                 bootstrap=self.bootstrap, solver="decoded"))
        return rows


def load_context(params: Params, name: str) -> TeacherContext:
    """Load a trained teacher, its ground truth and reference, and its dataset's quality metrics."""
    dataset = teacher_dataset(params, name)
    model = load_teacher(params, name)
    hint = rebuild_hint(f"teacher@{name}")
    gt = load_checkpoint(params.layout.teacher(name, "ground_truth.pt"), hint, kind="ground_truth")
    ref = load_checkpoint(params.layout.teacher(name, "reference.pt"), hint)
    meta = load_checkpoint(params.layout.teacher(name), hint)["meta"]
    extractor = feature_extractor(params, dataset) if dataset.is_image else None  # built once, used by both metrics
    device = params.torch_device
    reference = TeacherReference(gt_distance_metric(params, dataset, ref["reference"], extractor), ref["noise"].to(device),
                                 ref["floor"].to(device))
    return TeacherContext(name, dataset, model, quality_metric(params, dataset, extractor), gt["noise"].to(device),
                          gt["samples"].to(device), int(gt["nfe"]), float(meta["train_seconds"]), reference,
                          params.eval.bootstrap, float(meta.get("train_flops", 0.0)), params.eval.timing_repeats,
                          params.eval.latency_batch, params.eval.chunk,
                          quality_metric(params, dataset.pixels, extractor.extractor)
                          if isinstance(extractor, DecodedFeatures) else None)


def baseline_rows(params: Params, ctx: TeacherContext, progress: bool = True) -> list[dict[str, Any]]:
    """Every configured RK method at every NFE it can spend exactly on a uniform grid, every configured diffusers
    scheduler (`eval.diffusers`: DPM-Solver++, UniPC in their flow form) at every NFE, plus the adaptive GT."""
    jobs = [(m, n) for m in params.eval.methods for n in params.eval.nfes if n % get_tableau(m).stages == 0]
    rows = []
    for method, nfe in tqdm(jobs, desc=f"baselines {ctx.name}", disable=not progress):
        sampler = ODESampler.uniform(ctx.model, nfe, method)
        rows.append(ctx.evaluate(sampler, method="baseline"))
    for scheduler, nfe in tqdm([(s, n) for s in params.eval.diffusers for n in params.eval.nfes],
                               desc=f"diffusers schedulers {ctx.name}", disable=not progress or not params.eval.diffusers):
        rows.append(ctx.evaluate(DiffusersSampler(ctx.model, scheduler, steps=nfe), method="diffusers"))
    adaptive = AdaptiveSampler(ctx.model, params.eval.gt_rtol, params.eval.gt_atol)
    # the floor row; it stands for the teacher itself, so it carries the teacher's training time
    row = ctx.evaluate(adaptive, method="baseline", reference_samples=ctx.reference.floor, train_seconds=ctx.train_seconds)
    rows.append({**row, "train_flops": ctx.train_flops})
    return rows


def noise_band(ctx: TeacherContext, rows: pd.DataFrame) -> pd.DataFrame:
    """How far the distance to the data moves between draws, for the ground truth and the real data.

    Compares the bootstrap standard deviation in the rows with the spread over disjoint redraws of `n_eval`
    ground-truth samples (from the floor samples), so the bootstrap band is checked against real redraws.
    """
    gt = rows[rows["solver"] == "adaptive"].iloc[0]
    redraw_mean, redraw_sd, draws = redraw_std(ctx.metric, ctx.reference.floor, len(ctx.noise))
    names = {"heldout": "real held-out data", "decoded": "decoded held-out latents (the decoder floor)"}
    return pd.DataFrame([
        *({"row": names[held["solver"]], "quality": held["quality"], "bootstrap_std": held["quality_std"],
           "redraws": 0, "redraw_mean": float("nan"), "redraw_std": float("nan")}
          for _, held in rows[rows["method"] == "data"].iterrows()),
        {"row": "ground truth (adaptive)", "quality": gt["quality"], "bootstrap_std": gt["quality_std"],
         "redraws": draws, "redraw_mean": redraw_mean, "redraw_std": redraw_sd},
    ])


def baseline_headline(df: pd.DataFrame) -> dict[str, Any]:
    """Headline metrics of a baselines table: best quality and gt_distance at 4 NFE, real data, ground truth, floor."""
    gt = df[df["solver"] == "adaptive"]
    held, decoded = df[df["solver"] == "heldout"], df[df["solver"] == "decoded"]
    first = lambda frame, col: frame[col].iloc[0] if len(frame) else float("nan")  # noqa: E731
    extra = {"decoder_floor": first(decoded, "quality")} if len(decoded) else {}
    return headline_metrics(df, (4,), heldout=first(held, "quality"), gt=first(gt, "quality"),
                            floor=first(gt, "gt_distance"), **extra)
