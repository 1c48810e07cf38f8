"""One artefact layout: where every stage writes and reads, and the names of the samplers its files hold.

The experiments write through it, the explorer and the report read through it, so no path or sampler name is built
twice. `params.layout` is the layout of a parameter file (its `paths.artifacts` and `paths.reports`):

>>> from pathlib import Path
>>> lay = Layout(Path("artifacts"), Path("reports"))
>>> lay.boss_student("digits", BOSS_FULL, 6).as_posix()
'artifacts/boss/digits/bellman-euler+ft-full-k6.pt'
>>> lay.results("boss-digits").as_posix()
'reports/results/boss-digits.csv'
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

BOSS_FULL = "bellman-euler+ft-full"  # BOSS's fully finetuned student: its sampler name and checkpoint stem


def boss_lora(rank: int) -> str:
    """The sampler name of BOSS's rank-`rank` LoRA student."""
    return f"bellman-euler+ft-lora{rank}"


def bespoke_name(base: str) -> str:
    """The sampler name of a Bespoke solver on `base` (rk1 | rk2)."""
    return f"bespoke-{base}"


def fgm_label(t_star: float, init: str, l1_weight: float) -> str:
    """The name of one FGM run (its checkpoint stem and resume folder)."""
    return f"fgm-t{t_star:g}-{init}-l{l1_weight:g}"


@dataclass(frozen=True)
class Layout:
    """Every stage's paths under one artefact root (DVC outputs) and one reports root (committed)."""

    artifacts: Path
    reports: Path

    # ---------------------------------------------------------------------------------------- artefacts
    def stage(self, stage: str, teacher: str) -> Path:
        """The artefact folder of a per-teacher stage (teachers, boss, bespoke, flowturbo, fgm, combos)."""
        return self.artifacts / stage / teacher

    def classifier(self, dataset: str = "digits") -> Path:
        """The feature classifier behind a grey dataset's Fréchet distance (stage data)."""
        return self.artifacts / "features" / f"{dataset}_classifier.pt"

    def feature_stats(self, dataset: str) -> Path:
        """The mean and covariance of an image dataset's training split in its FID feature space (stage data)."""
        return self.artifacts / "features" / f"{dataset}_stats.pt"

    def autoencoders_dir(self) -> Path:
        """Stage autoencoders' artefact folder (one subfolder per autoencoder, and index.json)."""
        return self.artifacts / "autoencoders"

    def autoencoder(self, name: str) -> Path:
        """An image autoencoder of stage autoencoders (its resume state, last.pt, lies beside it)."""
        return self.autoencoders_dir() / name / "autoencoder.pt"

    def teacher(self, teacher: str, file: str = "teacher.pt") -> Path:
        """A file of the teacher stage: teacher.pt, meta.json, ground_truth.pt, reference.pt, last.pt."""
        return self.stage("teachers", teacher) / file

    def grids(self, teacher: str) -> Path:
        """BOSS's cost matrix and Bellman paths for every K."""
        return self.stage("boss", teacher) / "grids.pt"

    def boss_student(self, teacher: str, solver: str, k: int) -> Path:
        """A straightened (or reflowed) network of the BOSS stage: `solver` is its sampler name."""
        return self.stage("boss", teacher) / f"{solver}-k{k}.pt"

    def boss_reflow(self, teacher: str, name: str) -> Path:
        """A reflow baseline's network (uniform-reflow, distill-K-reflow)."""
        return self.stage("boss", teacher) / f"{name}.pt"

    def boss_ks(self, teacher: str, solver: str = BOSS_FULL) -> list[int]:
        """The K of every cached BOSS student named `solver`."""
        found = (re.fullmatch(rf"{re.escape(solver)}-k(\d+)", p.stem) for p in self.stage("boss", teacher).glob("*.pt"))
        return sorted(int(m[1]) for m in found if m)

    def bespoke_solver(self, teacher: str, base: str, nfe: int) -> Path:
        return self.stage("bespoke", teacher) / f"{bespoke_name(base)}-nfe{nfe}.pt"

    def bespoke_nfes(self, teacher: str) -> list[int]:
        """The NFE of every cached Bespoke solver (either base)."""
        found = (re.fullmatch(r"bespoke-rk\d-nfe(\d+)", p.stem) for p in self.stage("bespoke", teacher).glob("*.pt"))
        return sorted({int(m[1]) for m in found if m})

    def bespoke_pool(self, teacher: str) -> Path:
        """The teacher's dense ground-truth trajectories every Bespoke solver trains on."""
        return self.stage("bespoke", teacher) / "ground_truth_pool.pt"

    def refiner(self, teacher: str) -> Path:
        return self.stage("flowturbo", teacher) / "refiner.pt"

    def fgm_run(self, teacher: str, label: str) -> Path:
        """One FGM run's generator (`label`: fgm_label); its resume checkpoints live in `fgm_resume`."""
        return self.stage("fgm", teacher) / f"{label}.pt"

    def fgm_resume(self, teacher: str, label: str) -> Path:
        """The resume folder of one FGM run (its trainer's last.pt)."""
        return self.stage("fgm", teacher) / label

    def fgm_runs(self, teacher: str) -> list[Path]:
        return sorted(self.stage("fgm", teacher).glob("fgm-t*.pt"))

    # ---------------------------------------------------------------------------------------- reports
    def results(self, stage: str) -> Path:
        """A stage's result rows (`<stage>-<teacher>`)."""
        return self.reports / "results" / f"{stage}.csv"

    def metrics(self, stage: str) -> Path:
        return self.reports / "metrics" / f"{stage}.json"

    def figure(self, name: str) -> Path:
        return self.reports / "figures" / f"{name}.png"

    def claims(self, paper: str, teacher: str, suffix: str = ".csv") -> Path:
        """A paper's claims table on one teacher (and its markdown with suffix .md)."""
        return self.reports / "claims" / f"{paper}-{teacher}{suffix}"


SIDE_TABLE_SUFFIX = "-latency"  # reports/results/<stage>-<teacher>-latency.csv: a side table, not result rows


def teacher_of(name: str) -> str | None:
    """The teacher a per-teacher report file belongs to: `<stage>-<teacher>` (results, claims, metrics, executed
    notebooks; a side table `<stage>-<teacher>-latency`), None for a stage-wide one (`data`, `00_data`, `06_report`).

    >>> teacher_of("boss-digits.csv"), teacher_of("flowturbo-ring-latency"), teacher_of("00_data.ipynb")
    ('digits', 'ring', None)
    """
    stem = name.split(".", 1)[0]
    return stem.split("-", 1)[1].removesuffix(SIDE_TABLE_SUFFIX) if "-" in stem else None
