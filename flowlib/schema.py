"""The structure of params.yaml, declared once as typed pydantic sections (`ParamsFile`; the sections `Params` carries
are listed in `SECTIONS`): every key has a type and a range or a list of choices, unknown keys are rejected at every
level, lists whose entries must differ say so (`uniqueItems`), and each section carries the rules that tie its keys
together (`Section.rules`: K <= N, n_eval <= held-out size, a UNet needs images), checked after the types.

Names the algorithms define (solvers, diffusers' schedulers, the FlowTurbo schedule grammar) come from `flowlib.names`,
so the schema reads them without importing any algorithm. `flowlib.config` loads a file against it and words each
problem as `key.path: given → expected`.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Union

from pydantic import BaseModel, ConfigDict, Field

from .data import DATASETS, IMAGE_DATASETS, MIXTURE_DATASETS, heldout_size
from .device import DEVICE_PATTERN
from .flow import TrainConfig
from .names import DIFFUSERS_SCHEDULERS, SOLVERS, Schedule, ScheduleError

PositiveInt = Annotated[int, Field(ge=1, strict=True)]  # strict: `true` or 2.5 is not a count
UNIQUE = {"uniqueItems": True}  # json_schema_extra of a list whose entries must differ (JSON Schema: editors check it too)
NonNegativeInt = Annotated[int, Field(ge=0, strict=True)]
PositiveFloat = Annotated[float, Field(gt=0)]
SolverName = Literal[SOLVERS]  # type: ignore[valid-type]
SchedulerName = Literal[DIFFUSERS_SCHEDULERS]  # type: ignore[valid-type]
DatasetName = Literal[tuple(DATASETS)]  # type: ignore[valid-type]


class Problem(NamedTuple):
    """One problem of a parameter file: where (the key path as a tuple) and the line that explains it."""

    loc: tuple[Any, ...]
    text: str


def _problem(loc: tuple[Any, ...], text: str) -> Problem:
    """`key.path: text` at `loc`."""
    return Problem(loc, f"{_path(loc)}: {text}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"



class Section(BaseModel):
    """A block of params.yaml: unknown keys are errors, not silently ignored; numbers must be finite (no .inf/.nan).

    A section declares its own rules: types and ranges on its fields, `json_schema_extra=UNIQUE` on a list whose
    entries must differ, and `rules(pf)` for what ties its keys together or to other sections (checked once every key
    has its type, so each rule can trust the types)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    def rules(self, pf: "ParamsFile") -> list["Problem"]:
        """Problems of this section that its field types cannot express (none by default)."""
        return []

    def unique_problems(self, section: str) -> list["Problem"]:
        """A repeated entry in a list declared unique."""
        out = []
        for key, info in type(self).model_fields.items():
            values = getattr(self, key)
            if (info.json_schema_extra or {}).get("uniqueItems") and isinstance(values, list):
                out += [_problem((section, key, i), f"{value!r} again → each entry once (a repeated entry would run "
                                 "twice and write duplicate rows)") for i, value in enumerate(values) if value in values[:i]]
        return out


def trains_to_plateau(section: str, tc: TrainConfig) -> list["Problem"]:
    """Every learned component trains to its validation plateau: `val_every` set, and at most the cap."""
    if tc.val_every is None:
        return [_problem((section, "train", "val_every"), "missing → steps between validations (e.g. 100): every learned "
                         "component trains to its validation plateau")]
    if tc.val_every > tc.steps:
        return [_problem((section, "train", "val_every"), f"{tc.val_every} → at most {section}.train.steps = {tc.steps} "
                         "(the cap)")]
    return []


NAME_PATTERN = r"[A-Za-z][A-Za-z0-9_-]*"  # a teacher: folders under artifacts/ and reports/, DVC stage names


# ---------------------------------------------------------------------------------------------- schema
class PathsParams(Section):
    artifacts: str = Field("artifacts", description="DVC-cached checkpoints, ground truth, samples (not in git)")
    reports: str = Field("reports", description="committed tables and figures; executed notebooks")

    def rules(self, pf: "ParamsFile") -> list["Problem"]:
        """Every stage writes under these folders: they must stay inside the repository (relative, no `..`)."""
        return [_problem(("paths", key), f"{value!r} → a relative folder inside the repository (e.g. {key!r}): the "
                         "stages write there, and DVC tracks only what lies inside it")
                for key, value in (("artifacts", self.artifacts), ("reports", self.reports))
                if not value.strip() or Path(value).is_absolute() or ".." in Path(value).parts]


class DataParams(Section):
    root: str = Field("data", description="external inputs of the paper profile (data.dvc)")
    heldout_fraction: float = Field(1 / 3, gt=0, lt=1, description="digits: share of images held out")
    n_toy: PositiveInt = Field(20_000, description="2-D toys: points per split")
    seed: NonNegativeInt = 0
    classifier_steps: PositiveInt = Field(1500, description="digits classifier that defines fid-digits-classifier")
    inception_weights: str = "data/inception/inception-2015-12-05.pt"
    inception_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$", description="pins the Inception file")


class EvalParams(Section):
    nfes: list[PositiveInt] = Field([1, 2, 4, 6, 8, 10, 16, 32], min_length=1, json_schema_extra=UNIQUE)
    methods: list[SolverName] = Field(list(SOLVERS), min_length=1, json_schema_extra=UNIQUE)
    diffusers: list[SchedulerName] = Field([], json_schema_extra=UNIQUE, description="diffusers' flow-matching "
                                           "schedulers run as baselines at every NFE of eval.nfes (flowlib.diffusers_bridge)")
    gt_rtol: PositiveFloat = Field(1e-5, description="adaptive dopri5 ground truth")
    gt_atol: PositiveFloat = 1e-5
    seed: NonNegativeInt = Field(1234, description="evaluation noise, shared by all samplers")
    timing_repeats: PositiveInt = Field(5, description="ms_per_sample: the median of this many timed runs (after a "
                                        "warm-up) at batch latency_batch")
    latency_batch: PositiveInt = Field(256, description="the batch every row's latency is measured at")
    n_ref: int = Field(10_000, ge=2, strict=True, description="size of the teacher's ground-truth reference, and of the "
                       "noise every sampler also runs on for gt_distance")
    chunk: PositiveInt | None = Field(None, description="samples per sampler call, ground-truth solve and feature "
                                      "batch (bounded memory on a GPU); null: the whole batch at once")
    reference_seed: NonNegativeInt = Field(2024, description="noise of the ground-truth reference draw")
    distance_seed: NonNegativeInt = Field(99, description="noise the samplers run on for gt_distance")
    bootstrap: NonNegativeInt = Field(10, description="bootstrap resamples behind each noise band (0: no band)")
    band_sigmas: PositiveFloat = Field(2.0, description="a difference counts when it exceeds this many standard "
                                       "deviations of the difference")

    @property
    def seeds(self) -> dict[str, int]:
        """The three evaluation draws, which must be independent (and other stages' seeds must differ from them)."""
        return {"eval.seed": self.seed, "eval.reference_seed": self.reference_seed, "eval.distance_seed": self.distance_seed}

    def rules(self, pf: "ParamsFile") -> list["Problem"]:
        out = []
        if self.bootstrap == 1:
            out.append(_problem(("eval", "bootstrap"), "1 → 0 (no noise band) or at least 2 (a standard deviation needs "
                                "two resamples; with one it is NaN and every gap would count as a win)"))
        if len(set(self.seeds.values())) < len(self.seeds):
            out.append(_problem(("eval", "distance_seed"), f"{self.seeds} → three different seeds (the reference, the "
                                "samplers' distance noise and the evaluation noise must be independent draws)"))
        return out


class MLPConfig(Section):
    """`flowlib.models.MLPVelocity`."""

    arch: Literal["mlp"]
    hidden: PositiveInt = 512
    depth: int = Field(4, ge=2)
    time_dim: PositiveInt = 64


class UNetConfig(Section):
    """`flowlib.models.UNetVelocity` (images only)."""

    arch: Literal["unet"]
    width: PositiveInt = 32
    channel_mult: list[PositiveInt] = Field([1, 2], min_length=1)
    num_res_blocks: PositiveInt = 1
    attention_levels: list[NonNegativeInt] = []
    dropout: float = Field(0.0, ge=0, lt=1)
    time_dim: PositiveInt = 64


class MixtureConfig(Section):
    """`flowlib.models.GaussianMixtureVelocity`: the exact teacher of a Gaussian-mixture dataset (trains nothing)."""

    arch: Literal["mixture"]


ModelConfig = Annotated[Union[MLPConfig, UNetConfig, MixtureConfig], Field(discriminator="arch")]
NetConfig = Annotated[Union[MLPConfig, UNetConfig], Field(discriminator="arch")]


class AutoencoderParams(Section):
    """An image dataset's autoencoder (stage `autoencoders`): the latent space of the teachers that name it."""

    dataset: DatasetName
    latent_dim: PositiveInt = Field(32, description="size of the flat latent a latent teacher's flow runs on")
    width: PositiveInt = Field(32, description="channels of the first convolution (the second and third have twice)")
    batch_size: PositiveInt = Field(128, description="training batch")
    train: TrainConfig = Field(default_factory=TrainConfig, description="reconstruction training (to its validation "
                               "plateau; the steps are a cap)")

    def autoencoder_rules(self, name: str) -> list["Problem"]:
        where = ("autoencoders", name)
        out = [] if re.fullmatch(NAME_PATTERN, name) else [_problem(where, f"{name!r} → a name of letters, digits, '_' "
                                                                    "and '-' starting with a letter (it names a folder)")]
        if self.dataset not in IMAGE_DATASETS:
            out.append(_problem((*where, "dataset"), f"{self.dataset!r} → an image dataset ({', '.join(IMAGE_DATASETS)}): "
                                "an autoencoder compresses images"))
        return out + trains_to_plateau(f"autoencoders.{name}", self.train)


class TeacherParams(Section):
    dataset: DatasetName
    n_eval: PositiveInt = Field(description="evaluation samples (at most the held-out split)")
    batch_size: PositiveInt = Field(256, description="training batch (unused by an exact teacher)")
    model: ModelConfig
    train: TrainConfig = Field(default_factory=TrainConfig, description="training schedule (unused by an exact teacher)")
    student: NetConfig | None = Field(None, description="exact teachers: the network that FGM's generator and online "
                                      "model start from (a trained teacher's own weights otherwise)")
    latent: str | None = Field(None, description="an entry of `autoencoders`: the flow runs on its standardised latents "
                               "and every image metric decodes the samples first")

    @property
    def exact(self) -> bool:
        """A closed-form teacher: nothing to train, no weights to finetune."""
        return self.model.arch == "mixture"

    def teacher_rules(self, pf: "ParamsFile", name: str) -> list["Problem"]:
        """The rules of the teacher called `name` (its dataset decides what it may be)."""
        out, where = [], ("teachers", name)
        if not re.fullmatch(NAME_PATTERN, name):
            out.append(_problem(where, f"{name!r} → a name of letters, digits, '_' and '-' starting with a letter (it "
                                "names the teacher's folders under artifacts/ and reports/ and its DVC stages)"))
        held = heldout_size(self.dataset, pf.data.heldout_fraction, pf.data.n_toy)
        if self.n_eval > held:
            out.append(_problem((*where, "n_eval"), f"{self.n_eval} → at most {held}, the held-out size of {self.dataset} "
                                "(samples and real data are scored at the same size)"))
        if self.exact and self.dataset not in MIXTURE_DATASETS:
            out.append(_problem((*where, "model", "arch"), f"'mixture' → 'mlp': {self.dataset!r} has no closed-form "
                                f"mixture (exact teachers exist for {sorted(MIXTURE_DATASETS)})"))
        if self.exact and self.student is None:
            out.append(_problem((*where, "student"), "missing → a network config (e.g. {arch: mlp, hidden: 128, depth: 3}) "
                                "for the methods that train a copy of the teacher"))
        if self.model.arch == "unet" and self.dataset not in IMAGE_DATASETS:
            out.append(_problem((*where, "model", "arch"), f"'unet' → 'mlp' for the 2-D dataset {self.dataset!r}"))
        if self.latent is not None:
            out += self.latent_rules(pf, where)
        return out

    def latent_rules(self, pf: "ParamsFile", where: tuple[str, str]) -> list["Problem"]:
        """A latent teacher names an autoencoder of its own dataset, and learns a flat latent with an MLP."""
        ae = pf.autoencoders.get(self.latent)
        if ae is None:
            return [_problem((*where, "latent"), f"{self.latent!r} → one of the `autoencoders` entries "
                             f"{sorted(pf.autoencoders) or '(none configured: add one)'}")]
        out = []
        if ae.dataset != self.dataset:
            out.append(_problem((*where, "latent"), f"{self.latent!r} (an autoencoder of {ae.dataset}) → an autoencoder "
                                f"of {self.dataset}, the teacher's dataset"))
        if self.model.arch != "mlp":
            out.append(_problem((*where, "model", "arch"), f"{self.model.arch!r} → 'mlp': the latent is a flat "
                                f"{ae.latent_dim}-vector"))
        return out

    @property
    def model_dict(self) -> dict[str, Any]:
        """The model config as the plain dict `build_model` and checkpoints take."""
        return self.model.model_dump()

    @property
    def student_dict(self) -> dict[str, Any]:
        """The config of a trainable net of this teacher's kind: its own, or `student` for an exact teacher."""
        return (self.student or self.model).model_dump()


class BossParams(Section):
    """BOSS: Bellman grids, the straightening finetune and the reflow baselines."""

    n_fine: PositiveInt = Field(100, description="fine uniform Euler grid N = K_max (paper: 100)")
    n_cost: PositiveInt = Field(100, description="noise samples for the cost matrix (paper: 100)")
    nfes: list[PositiveInt] = Field([2, 4, 6, 8, 10], min_length=1, description="Bellman grids evaluated",
                                    json_schema_extra=UNIQUE)
    finetune_k: list[PositiveInt] = Field([4, 6], description="K of the straightening finetunes", json_schema_extra=UNIQUE)
    n_pairs: PositiveInt = Field(2000, description="teacher trajectories for the pairs (paper: 5000)")
    n_val: PositiveInt = Field(256, description="held-out noises whose RMSE to the ground truth drives the stopping rule")
    batch_size: PositiveInt = 64
    lora_rank: PositiveInt = 4
    lora_alpha: PositiveFloat = 1.0
    reflow_eps: float = Field(1e-3, ge=0, lt=1)
    seed: NonNegativeInt = 7
    train: TrainConfig = Field(default_factory=TrainConfig, description="every finetune: its cap (steps) and stopping "
                               "rule (val_every, patience, rel_tol); the reflows get at most BOSS's steps (equal iterations)")

    def rules(self, pf: "ParamsFile") -> list["Problem"]:
        out = trains_to_plateau("boss", self.train)
        for key in ("nfes", "finetune_k"):
            out += [_problem(("boss", key, i), f"{k} → at most boss.n_fine = {self.n_fine} (K jumps on the fine grid)")
                    for i, k in enumerate(getattr(self, key)) if k > self.n_fine]
        return out


class BespokeParams(Section):
    """Bespoke solvers: one learned RK1/RK2 scale-time solver per (base, NFE), trained on the teacher's paths."""

    nfes: list[PositiveInt] = Field([2, 4, 6, 8, 10, 16, 20], min_length=1, json_schema_extra=UNIQUE,
                                    description="NFE budgets (RK2 takes the even ones: 2 NFE per step)")
    bases: list[Literal["rk1", "rk2"]] = Field(["rk1", "rk2"], min_length=1, description="base solvers",
                                               json_schema_extra=UNIQUE)
    pool: PositiveInt = Field(1024, description="training noises whose dense ground truth is solved once")
    val: PositiveInt = Field(256, description="held-out validation noises (checkpoint choice by RMSE)")
    grid: int = Field(101, ge=2, description="time points of the dense ground truth (cubic Hermite in between)")
    iterations: PositiveInt = Field(1000, description="the cap on Adam steps per solver (training stops earlier at the "
                                    "validation plateau)")
    batch_size: PositiveInt = 16
    lr: PositiveFloat = 1e-2
    l_tau: PositiveFloat = Field(1.0, description="L_τ, the network's Lipschitz bound in the loss weights (paper: 1)")
    val_every: PositiveInt = Field(20, description="iterations between validation RMSE checks")
    patience: PositiveInt = Field(5, description="validation checks without a relative gain of rel_tol that end training")
    rel_tol: float = Field(0.01, ge=0, lt=1, description="relative validation gain that counts as progress")
    seed: NonNegativeInt = 11

    def rules(self, pf: "ParamsFile") -> list["Problem"]:
        out = []
        for base in self.bases:
            stages = 2 if base == "rk2" else 1
            if not any(n % stages == 0 for n in self.nfes):
                out.append(_problem(("bespoke", "nfes"), f"{self.nfes} → at least one NFE that {base} can spend ({base} "
                                    f"takes {stages} NFE per step{': an even NFE' if stages == 2 else ''}); as written "
                                    f"the stage would train no {base} solver"))
        return out


DEFAULT_SCHEDULES = ["H1P2", "H1P4", "H1P8", "H1P2R2", "H1P4R2", "H1P8R3", "H3R2", "H2P2R2", "H1P1R1H1P1R1"]


class FlowTurboParams(Section):
    """FlowTurbo: a velocity refiner per teacher, H/P/R schedules, eager and compiled sampling, latency."""

    refiners: dict[str, ModelConfig] = Field({}, description="the refiner's net per teacher (a key of `teachers`)")
    delta_max: float = Field(0.15, gt=0, le=1, description="Δ ~ U(0, delta_max) per batch in training (paper: 0.12)")
    batch_size: PositiveInt = 128
    train: TrainConfig = Field(default_factory=TrainConfig)
    schedules: list[str] = Field(DEFAULT_SCHEDULES, min_length=1, description="H/P/R schedules, e.g. H1P4R2",
                                 json_schema_extra=UNIQUE)
    compile: bool | list[str] = Field(True, description="also time every sampler compiled with torch.compile: true, "
                                      "false, or the teachers to compile for", json_schema_extra=UNIQUE)

    def compiles(self, teacher: str) -> bool:
        """Whether the compiled samplers run for `teacher`."""
        return self.compile if isinstance(self.compile, bool) else teacher in self.compile
    latency_batches: list[PositiveInt] = Field([1, 8, 64], min_length=1, description="batch sizes of the latency table",
                                               json_schema_extra=UNIQUE)
    heun_nfes: list[PositiveInt] = Field([2, 4, 6, 8, 10, 16], min_length=1, json_schema_extra=UNIQUE,
                                         description="Heun's NFEs on the latency table (its curve for the acceleration ratio)")
    latency_repeats: PositiveInt = Field(11, description="timed runs per latency cell (the median is kept)")
    ratio_batch: PositiveInt = Field(8, description="the batch size whose latency the acceleration ratio uses")

    def rules(self, pf: "ParamsFile") -> list["Problem"]:
        out = trains_to_plateau("flowturbo", self.train)
        for i, text in enumerate(self.schedules):
            try:
                Schedule.parse(text)
            except ScheduleError as exc:
                out.append(_problem(("flowturbo", "schedules", i), f"{text!r} → {exc}"))
        out += [_problem(("flowturbo", "heun_nfes", i), f"{n} → an even NFE of eval.nfes {pf.eval.nfes} (Heun's quality "
                         "comes from the baselines stage)") for i, n in enumerate(self.heun_nfes)
                if n % 2 or n not in pf.eval.nfes]
        if self.ratio_batch not in self.latency_batches:
            out.append(_problem(("flowturbo", "ratio_batch"), f"{self.ratio_batch} → one of flowturbo.latency_batches "
                                f"{self.latency_batches}"))
        out += [_problem(("flowturbo", "refiners", name), f"unknown teacher → one of {sorted(pf.teachers)}")
                for name in self.refiners if name not in pf.teachers]
        out += [_problem(("flowturbo", "compile", i), f"{name!r} → one of {sorted(pf.teachers)}")
                for i, name in enumerate([] if isinstance(self.compile, bool) else self.compile) if name not in pf.teachers]
        for name, tp in pf.teachers.items():
            if name not in self.refiners:
                out.append(_problem(("flowturbo", "refiners"), f"no refiner for teacher {name!r} → add "
                                    f"flowturbo.refiners.{name}, e.g. {{arch: mlp, hidden: 64, depth: 3}}"))
            elif self.refiners[name].arch == "unet" and tp.dataset not in IMAGE_DATASETS:
                out.append(_problem(("flowturbo", "refiners", name, "arch"), f"'unet' → 'mlp' for the 2-D dataset "
                                    f"{tp.dataset!r}"))
        return out


class FGMParams(Section):
    """Flow Generator Matching: one-step generators distilled from each teacher, a t* sweep, one-step baselines."""

    t_stars: list[float] = Field([0.0, 0.1, 0.2], min_length=1, description="generator times t* in [0, 1) to sweep",
                                 json_schema_extra=UNIQUE)
    batch_size: PositiveInt = 128
    train: TrainConfig = Field(default_factory=TrainConfig, description="every generator run: its cap (steps) and "
                               "stopping rule (val_every, patience, rel_tol) on the validation distance")
    online_lr: PositiveFloat | None = Field(None, description="the online model's lr (None: train.lr)")
    l1_weights: list[Annotated[float, Field(ge=0)]] = Field(
        [0.0, 1.0], min_length=1, json_schema_extra=UNIQUE, description="λ in λ L1 + L2: the t* sweep uses the first "
        "(paper: 0, L2 only), the best t* is rerun with each other one (1: the exact gradient); the headline is chosen on "
        "validation")
    n_val: PositiveInt = Field(1000, description="validation noises that choose t* and λ (never the evaluation noise)")
    n_pairs: PositiveInt = Field(2000, description="(noise, teacher sample) pairs of the one-step reflow baseline")
    seed: NonNegativeInt = 21

    def rules(self, pf: "ParamsFile") -> list["Problem"]:
        out = trains_to_plateau("fgm", self.train)
        out += [_problem(("fgm", "t_stars", i), f"{t} → a time in [0, 1) (g(z) = z + (1 − t*) f(z, t*))")
                for i, t in enumerate(self.t_stars) if not 0.0 <= t < 1.0]
        return out


class CombosParams(Section):
    """Combinations no paper tried: Bespoke and FlowTurbo on BOSS's straightened network (stage `combos@<teacher>`)."""

    teachers: list[str] = Field([], description="trained teachers to run the combinations on (their BOSS stage must "
                                "finetune at K)", json_schema_extra=UNIQUE)
    k: PositiveInt = Field(6, description="the BOSS network straightened at K steps (one of boss.finetune_k); the "
                           "combinations spend K NFE")
    pool: PositiveInt = Field(256, description="Bespoke's training trajectories of the straightened network")
    val: PositiveInt = Field(64, description="Bespoke's validation noises")

    def rules(self, pf: "ParamsFile") -> list["Problem"]:
        out = []
        for i, name in enumerate(self.teachers):
            if name not in pf.teachers:
                out.append(_problem(("combos", "teachers", i), f"{name!r} → one of {sorted(pf.teachers)}"))
            elif pf.teachers[name].exact:
                out.append(_problem(("combos", "teachers", i), f"{name!r} → a trained teacher (the exact one has no BOSS "
                                    "network to build on)"))
        if self.teachers and self.k not in pf.boss.finetune_k:
            out.append(_problem(("combos", "k"), f"{self.k} → one of boss.finetune_k {pf.boss.finetune_k} (the "
                                "combinations start from BOSS's network straightened at K)"))
        if self.teachers and self.k < 3:
            out.append(_problem(("combos", "k"), f"{self.k} → at least 3 (FlowTurbo's H1P(K−2) needs a P step)"))
        return out


class ParamsFile(Section):
    """The structure of params.yaml (and of every file under profiles/)."""

    profile: str = "default"
    device: str = Field("auto", pattern=DEVICE_PATTERN, description="where every stage computes: auto (CUDA when "
                        "available, else the CPU), cpu, cuda (under torchrun: this process's GPU) or cuda:N; the "
                        "environment variable FLOWLIB_DEVICE overrides it")
    paths: PathsParams = Field(default_factory=PathsParams)
    data: DataParams = Field(default_factory=DataParams)
    eval: EvalParams = Field(default_factory=EvalParams)
    autoencoders: dict[str, "AutoencoderParams"] = Field({}, description="image autoencoders whose latent space a "
                                                         "teacher's `latent` may name (stage autoencoders)")
    teachers: dict[str, TeacherParams] = Field(min_length=1, description="one teacher flow per entry")
    boss: BossParams = Field(default_factory=BossParams)
    bespoke: BespokeParams = Field(default_factory=BespokeParams)
    flowturbo: FlowTurboParams = Field(default_factory=FlowTurboParams)
    fgm: FGMParams = Field(default_factory=FGMParams)
    combos: CombosParams = Field(default_factory=CombosParams)
    smoke: dict[str, Any] = Field({}, description="overrides of the same keys for FLOWLIB_SMOKE=1 (the tests)")

    def rules(self, pf: "ParamsFile") -> list["Problem"]:
        """Every section's rules and each teacher's, in the order of SECTIONS."""
        out = self.paths.rules(self)
        for name in SECTIONS:
            section = getattr(self, name)
            if isinstance(section, Section):
                out += section.unique_problems(name) + section.rules(self)
        for name, ae in self.autoencoders.items():
            out += ae.autoencoder_rules(name)
        for name, tp in self.teachers.items():
            out += tp.teacher_rules(self, name)
        return out + self.seed_separation()

    def fitting_seeds(self) -> list[tuple[tuple[Any, ...], int, str]]:
        """Every seed a stage draws its data, fitting, training or validation noise from: (key path, offset, what it
        draws); the draw uses the key's value plus the offset (BOSS's pairs: `boss.seed + 1`)."""
        out = [(("data", "seed"), 0, "the 2-D toy data and the held-out split")]
        out += [(("autoencoders", name, "train", "seed"), 0, f"autoencoder {name}'s batches") for name in self.autoencoders]
        out += [(("teachers", name, "train", "seed"), 0, f"teacher {name}'s training noise") for name in self.teachers]
        return out + [(("boss", "seed"), 0, "BOSS's cost-matrix noise"), (("boss", "seed"), 1, "BOSS's pairs"),
                      (("boss", "seed"), 2, "BOSS's validation noise"),
                      (("boss", "train", "seed"), 0, "the straightening finetunes' training noise"),
                      (("bespoke", "seed"), 0, "the Bespoke training and validation noise"),
                      (("flowturbo", "train", "seed"), 0, "the refiner's training noise"),
                      (("fgm", "seed"), 0, "FGM's validation noise"), (("fgm", "seed"), 1, "the reflow baseline's pairs"),
                      (("fgm", "train", "seed"), 0, "FGM's training noise")]

    def seed_separation(self) -> list["Problem"]:
        """No data, fitting, training or validation draw may use an evaluation seed: a method fitted on the noise it
        is then scored on would look better than it is."""
        by_seed = {seed: key for key, seed in self.eval.seeds.items()}
        out, dumped = [], self.model_dump()
        for loc, offset, what in self.fitting_seeds():
            value = dumped
            for key in loc:
                value = value[key]
            if value + offset in by_seed:
                drawn = f"{_path(loc)} + {offset} = {value + offset}" if offset else str(value)
                out.append(_problem(loc, f"{value} → another seed: {what} would be drawn from {drawn}, which is "
                                         f"{by_seed[value + offset]} (a method fitted or validated on the noise it is "
                                         f"scored on looks better than it is; evaluation seeds: {self.eval.seeds})"))
        return out


SECTIONS = ("data", "eval", "autoencoders", "teachers", "boss", "bespoke", "flowturbo", "fgm", "combos")  # what Params carries
