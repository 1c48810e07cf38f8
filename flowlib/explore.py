"""The interactive explorer behind `notebooks/explore.ipynb`: any cached sampler of any teacher, its samples and
(for 2-D teachers) its trajectories over the ground truth's.

Loads artefacts only; it never trains. A missing artefact raises `ExplorerError` naming the stage that makes it.
Every function works without a browser (the widgets in `explorer()` only call them), so the notebook runs headless.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import matplotlib.pyplot as plt
import pandas as pd
import torch
from torch import Tensor, nn

from .artifacts import load_checkpoint
from .config import Params
from .data import Dataset
from .distill.bespoke import load_bespoke
from .distill.fgm import GeneratorSampler, load_generator
from .distill.flowturbo import load_refiner
from .errors import FlowlibError
from .experiments.common import load_teacher, teacher_dataset, teacher_shape
from .flow import load_velocity_model
from .layout import BOSS_FULL
from .plots import SavedFigure, draw_panel, save_figure
from .solvers import ODESampler, Sampler, solve_adaptive
from .solvers.bespoke import BespokeSampler
from .solvers.flowturbo import FlowTurboSampler, Schedule

EXPLORER_METHODS = ("teacher", "bellman", "boss", "bespoke", "flowturbo", "fgm")


class ExplorerError(FlowlibError, ValueError):
    """A sampler the cached artefacts cannot provide; says which stage to run."""


@dataclass
class Knobs:
    """What the widgets set: the teacher's solver and NFE, BOSS's K, a FlowTurbo schedule, FGM's t*."""

    nfe: int = 4
    solver: str = "euler"
    k: int = 6
    schedule: str = "H1P4"
    t_star: float | None = None  # None: the headline generator (the longest run)
    base: str = "rk2"


def _need(path: Path, stage: str) -> Path:
    if not path.is_file():
        raise ExplorerError(f"{path.name} is not cached for this teacher; run `dvc repro {stage}` first (or its notebook).")
    return path


def fgm_generators(params: Params, teacher: str) -> dict[float, tuple[float, Path]]:
    """t* → (validation distance, path) of the cached generator at that t* nearest the teacher's distribution on the
    validation noise (every run records its t* and validation distance in its checkpoint)."""
    best: dict[float, tuple[float, Path]] = {}
    for path in params.layout.fgm_runs(teacher):
        meta = load_checkpoint(path).get("meta", {})
        t_star, val = float(meta.get("t_star", math.nan)), float(meta.get("val_distance", math.inf))
        if not math.isnan(t_star) and (t_star not in best or val < best[t_star][0]):
            best[t_star] = (val, path)
    return dict(sorted(best.items()))


def available(params: Params, teacher: str) -> dict[str, Any]:
    """What is cached for `teacher`: per method, the knob values it can take (empty when its stage has not run)."""
    lay = params.layout
    grids = lay.grids(teacher)
    k_grid = sorted(load_checkpoint(grids)["paths"]) if grids.is_file() else []
    return {
        "teacher": [1, 2, 4, 6, 8, 10, 20],
        "bellman": k_grid,
        "boss": lay.boss_ks(teacher),
        "bespoke": lay.bespoke_nfes(teacher),
        "flowturbo": [s for s in params.flowturbo.schedules  # schedules without R steps need no refiner
                      if lay.refiner(teacher).is_file() or not Schedule.parse(s).count("R")],
        "fgm": list(fgm_generators(params, teacher)),
    }


def build_sampler(params: Params, teacher: str, method: str, knobs: Knobs | None = None,
                  model: nn.Module | None = None) -> Sampler:
    """The sampler `method` gives for `teacher` with `knobs`, from cached artefacts only (`model`: the teacher, when
    the caller has already loaded it)."""
    knobs = knobs or Knobs()
    lay = params.layout
    if method not in EXPLORER_METHODS:
        raise ExplorerError(f"Unknown method {method!r}; choose one of {', '.join(EXPLORER_METHODS)}.")
    model = model if model is not None else load_teacher(params, teacher)
    if method == "teacher":
        return ODESampler.uniform(model, knobs.nfe, knobs.solver)
    if method in ("bellman", "boss"):
        grids = load_checkpoint(_need(lay.grids(teacher), f"boss@{teacher}"))
        if knobs.k not in grids["paths"]:
            raise ExplorerError(f"No Bellman grid with K = {knobs.k} for {teacher}; cached: {sorted(grids['paths'])} "
                                "(boss.nfes and boss.finetune_k set them).")
        grid = grids["times"][grids["paths"][knobs.k]]
        if method == "bellman":
            return ODESampler(model, grid, "euler", name=f"bellman-euler-k{knobs.k}")
        net = load_velocity_model(_need(lay.boss_student(teacher, BOSS_FULL, knobs.k), f"boss@{teacher}"))
        return ODESampler(net, grid, "euler", name=f"boss-k{knobs.k}")
    if method == "bespoke":
        path = _need(lay.bespoke_solver(teacher, knobs.base, knobs.nfe), f"bespoke@{teacher}")
        return BespokeSampler(model, load_bespoke(path))
    if method == "flowturbo":
        needs_refiner = Schedule.parse(knobs.schedule).count("R") > 0   # H and P steps use the teacher alone
        refiner = load_refiner(_need(lay.refiner(teacher), f"flowturbo@{teacher}")) if needs_refiner else None
        return FlowTurboSampler(model, knobs.schedule, refiner)
    generators = fgm_generators(params, teacher)
    if not generators:
        raise ExplorerError(f"No FGM generator is cached for this teacher; run `dvc repro fgm@{teacher}` first (or its "
                            "notebook).")
    headline = min(generators, key=lambda t: generators[t][0])  # the one chosen on validation
    t_star = knobs.t_star if knobs.t_star is not None else headline
    if t_star not in generators:
        raise ExplorerError(f"No FGM generator at t* = {t_star}; cached: {list(generators)}.")
    return GeneratorSampler(load_generator(generators[t_star][1]), name=f"fgm-t{t_star:g}")


_DATASETS: dict[tuple[int, str], Dataset] = {}


def explored_dataset(params: Params, teacher: str) -> Dataset:
    """What `teacher` learned (a latent teacher: its encoded dataset), loaded once per session: every knob change redraws."""
    key = (id(params), teacher)
    if key not in _DATASETS:
        _DATASETS[key] = teacher_dataset(params, teacher)
    return _DATASETS[key]


def explorer_noise(params: Params, teacher: str, n: int, seed: int = 0) -> Tensor:
    """A fixed noise batch (the same for every sampler, so panels are comparable)."""
    shape = teacher_shape(params, teacher)
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))


def record_path(sampler: Sampler, noise: Tensor) -> Tensor:
    """[points, batch, ...]: the states where the sampler called its network, then its output (a generator: start, end)."""
    states: list[Tensor] = []
    velocity: Callable | None = getattr(sampler, "velocity", None)
    if velocity is None:
        return torch.stack([noise, sampler(noise)])

    def recording(x: Tensor, t: Tensor, *rest: Tensor) -> Tensor:
        states.append(x.detach().clone())
        return velocity(x, t, *rest)

    sampler.velocity = recording
    try:
        out = sampler(noise)
    finally:
        sampler.velocity = velocity
    return torch.stack([*states, out])


def ground_truth_path(model: nn.Module | Callable, noise: Tensor, points: int = 41) -> Tensor:
    """The teacher's ODE solution (dopri5) at `points` evenly spaced times."""
    with torch.no_grad():
        return solve_adaptive(model, noise, times=torch.linspace(0, 1, points, dtype=torch.float64))


def show(params: Params, teacher: str, method: str, knobs: Knobs | None = None, n: int = 512, n_paths: int = 24,
         path: str | Path | None = None) -> SavedFigure | plt.Figure:
    """Samples of the chosen sampler beside the ground truth's, and for 2-D teachers the first `n_paths` trajectories
    over the ground truth's. Saved to `path` when given, else returned as a matplotlib figure."""
    model = load_teacher(params, teacher)
    sampler = build_sampler(params, teacher, method, knobs, model)
    noise = explorer_noise(params, teacher, n)
    truth = ground_truth_path(model, noise)
    samples = sampler(noise)
    dataset = explored_dataset(params, teacher)
    two_d = not dataset.is_image
    fig, axes = plt.subplots(1, 3 if two_d else 2, figsize=(13 if two_d else 9, 4.2))
    reference = dataset.heldout[:2000] if two_d else None
    # a latent teacher's samples are decoded: grids of images, not a scatter of latents
    draw_panel(axes[0], dataset.to_images(samples), f"{sampler.name} ({sampler.nfe} NFE)", reference, 8)
    draw_panel(axes[1], dataset.to_images(truth[-1]), "ground truth (dopri5)", reference, 8)
    if two_d:
        ax = axes[2]
        mine = record_path(sampler, noise[:n_paths])
        for i in range(min(n_paths, noise.shape[0])):
            ax.plot(truth[:, i, 0], truth[:, i, 1], color="grey", linewidth=1, alpha=0.7)
            ax.plot(mine[:, i, 0], mine[:, i, 1], "-o", color="C1", markersize=2, linewidth=1)
        ax.plot([], [], color="grey", label="ground truth")
        ax.plot([], [], "-o", color="C1", label=sampler.name)
        ax.set(title="trajectories (noise → data)", aspect="equal")
        ax.legend(fontsize=7)
    fig.suptitle(f"{teacher}: {method}")
    if path is None:
        return fig
    return save_figure(fig, path)


GALLERY_PAPERS = {"fgm": "FGM", "boss": "BOSS", "bespoke": "Bespoke", "flowturbo": "FlowTurbo"}


def row_sampler(params: Params, teacher: str, method: str, solver: str, nfe: int, model: nn.Module) -> Sampler | None:
    """The sampler a result row of a paper's stage names, rebuilt from the cached artefacts; None for rows that are no
    sampler of the paper's own (its baselines, ablations, compiled twins)."""
    if method == "boss" and solver in ("bellman-euler", BOSS_FULL):
        return build_sampler(params, teacher, "bellman" if solver == "bellman-euler" else "boss", Knobs(k=nfe), model)
    if method == "bespoke" and solver.startswith("bespoke-rk"):
        return build_sampler(params, teacher, "bespoke", Knobs(nfe=nfe, base=solver.removeprefix("bespoke-")), model)
    if method == "flowturbo" and not solver.endswith("-compiled"):
        return build_sampler(params, teacher, "flowturbo", Knobs(schedule=solver), model)
    if method == "fgm" and solver == "fgm":
        return build_sampler(params, teacher, "fgm", Knobs(), model)
    return None


def gallery(params: Params, teacher: str, results: pd.DataFrame, nfes: tuple[int, ...] = (1, 2, 4),
            n: int = 16) -> dict[str, Tensor]:
    """Images of an image teacher, title -> [n, C, H, W]: real held-out images, the ground truth, and at each NFE in
    `nfes` each paper's sampler nearest the teacher's distribution (by `gt_distance` in `results`), all from the
    first `n` evaluation noises and decoded where the teacher is latent. A paper with no sampler at an NFE has no panel."""
    dataset = teacher_dataset(params, teacher)
    model = load_teacher(params, teacher).cpu()
    truth = load_checkpoint(params.layout.teacher(teacher, "ground_truth.pt"), kind="ground_truth")
    noise = truth["noise"][:n]
    panels = {"real held-out": dataset.pixels.heldout[:n], "ground truth": dataset.to_images(truth["samples"][:n])}
    rows = results[results["teacher"] == teacher].sort_values("gt_distance")
    for nfe in nfes:
        for method, paper in GALLERY_PAPERS.items():
            for row in rows[(rows["method"] == method) & (rows["nfe"] == nfe)].itertuples():
                sampler = row_sampler(params, teacher, method, str(row.solver), nfe, model)
                if sampler is not None:
                    with torch.no_grad():
                        panels[f"{paper} {row.solver}, {nfe} NFE"] = dataset.to_images(sampler(noise))
                    break
    return panels


def explorer(params: Params, teachers: list[str] | None = None) -> Any:
    """The ipywidgets explorer: pick the teacher, the method and its knobs; the figure updates on every change."""
    import ipywidgets as w
    from IPython.display import display

    teachers = teachers or list(params.teachers)
    teacher = w.Dropdown(options=teachers, description="teacher")
    method = w.Dropdown(options=EXPLORER_METHODS, value="teacher", description="method")
    nfe = w.Dropdown(options=[1, 2, 4, 6, 8, 10, 20], value=4, description="NFE")
    solver = w.Dropdown(options=["euler", "midpoint", "heun", "rk4"], description="solver")
    k = w.Dropdown(options=[2, 4, 6, 8, 10], value=6, description="K")
    schedule = w.Text(value="H1P4", description="schedule", continuous_update=False)
    t_star = w.Dropdown(options=[None], description="t*")
    out = w.Output()

    def refresh(*_: Any) -> None:
        out.clear_output(wait=True)
        with out:
            try:
                fig = show(params, teacher.value, method.value, Knobs(nfe.value, solver.value, k.value, schedule.value,
                                                                      t_star.value))
                display(fig)
                plt.close(fig)
            except FlowlibError as err:  # a knob the artefacts or the method cannot take: say why
                print(f"{type(err).__name__}: {err}")

    def new_teacher(*_: Any) -> None:  # only a new teacher changes which generators are cached
        t_star.options = [None, *available(params, teacher.value)["fgm"]]
        refresh()

    teacher.observe(new_teacher, names="value")
    for widget in (method, nfe, solver, k, schedule, t_star):
        widget.observe(refresh, names="value")
    new_teacher()
    return w.VBox([w.HBox([teacher, method]), w.HBox([nfe, solver, k]), w.HBox([schedule, t_star]), out])
