"""Numbers in prose come from the results: outside the blocks `make repro` generates (between `<!-- NAME:start -->` and
`<!-- NAME:end -->`), the README, the notebooks' markdown and the comments of `params.yaml` and the profiles state no
measured number. What looks like one (a decimal, a percentage, a ±, a duration, a ratio like `1.3×`) must be a fact that
no run can change (a paper's number, a criterion, a size fixed by the configuration) and is listed below with the
reason; a new one fails `test_no_typed_measurement_in_prose` until it is generated or listed.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What a measured number looks like in prose.
MEASURED = re.compile(r"(?<![\w.])(?:\d[\d,]*\.\d+|\d[\d,]*(?:\.\d+)?\s?(?:%|×|ms\b|s\b|min\b|h\b)|±\s?\d)")

# file -> phrases that hold such a number but state no result of a run, each with its reason.
ALLOWED: dict[str, dict[str, str]] = {
    "README.md": {
        "Python 3.11": "the required interpreter",
        "a grid starting at 0.3 would treat the noise as the state at 0.3": "an example of a refused input",
        "\"Within 5 % / 1 % of the ground truth\"": "the paper's claim, quoted",
        "within 10 % of its own plateau": "the teacher-initialisation criterion (reports/claims)",
        "28×28": "the image size of Fashion-MNIST",
        "7×7": "the autoencoder's feature-map size (configured)",
        "[H1P1R1]×2": "a schedule's name",
        "1.1M-parameter": "the configured UNet's size (fashion-gpu.yaml)",
    },
    "params.yaml": {
        "1% relative gain": "the configured rel_tol, restated",
        "~4.4% of SiT-XL": "the paper's number",
        "5.4% of the digits teacher's parameters": "the configured refiner's size (a parameter count, not a run)",
        "3.9% of the moons teacher's": "the configured refiner's size (a parameter count, not a run)",
        "U(0, 0.15)": "the configured Δ_max",
        "(paper: 0.12)": "the paper's number",
        "0.9999": "the paper's EMA decay",
        "lr 1e-5 to 3e-5": "the paper's learning rates",
        "Adam β = (0, 0.999)": "the configured optimiser, as the papers it follows",
        "t* = 0": "a configured value",
    },
    "profiles/cifar10.yaml": {
        "about 2.5 GB": "the pool's size in memory, computed from its shape",
        "~4.4% of SiT-XL/2": "the paper's number",
    },
    "profiles/fashion-gpu.yaml": {
        "28x28": "the image size",
        "1.1M-parameter": "the configured UNet's size",
        "1.07M parameters": "the configured UNet's size",
        "about 4% of the teacher": "the configured refiner's size",
    },
    "profiles/fashion.yaml": {
        "1.1M parameters": "the configured teacher's size",
        "4.4% of the teacher": "the configured refiner's size",
        "~4.4%": "the paper's number",
        "(default: 0, 0.1, 0.2)": "the default profile's configured t*",
    },
    "notebooks/00_data.ipynb": {"8×8": "the digits' image size", "28×28": "Fashion-MNIST's image size"},
    "notebooks/00b_autoencoders.ipynb": {"28×28 image to 7×7": "the image and feature-map sizes"},
    "notebooks/02_boss.ipynb": {"arXiv:2312.16414": "the paper", "about 2 % of the parameters": "the paper's number"},
    "notebooks/03_bespoke.ipynb": {
        "arXiv:2310.19075": "the paper",
        "within 5 % of the ground truth's quality and within 1 % at 20": "the paper's claim",
        "costs about 1 % of training the teacher": "the paper's claim",
        "(2×, 4×, …)": "refinement factors of the method",
    },
    "notebooks/04_flowturbo.ipynb": {"≈ 4.4 % of the parameters": "the paper's number", "0.12": "the paper's Δ_max"},
    "notebooks/05_fgm.ipynb": {"arXiv:2410.19310": "the paper"},
}


def blocks_removed(text: str) -> str:
    """`text` without its generated blocks."""
    return re.sub(r"<!-- ([\w:-]+):start -->.*?<!-- \1:end -->", "", text, flags=re.S)


def prose_of_readme() -> str:
    text = blocks_removed((ROOT / "README.md").read_text())
    text = re.sub(r"```.*?```", "", text, flags=re.S)           # commands and examples: run by the tests
    return re.sub(r"`[^`\n]*`", "", text)                         # names, keys, commands


def comments_of(path: Path) -> str:
    return "\n".join(line.split("#", 1)[1] for line in path.read_text().splitlines() if "#" in line)


def markdown_of(notebook: Path) -> str:
    cells = json.loads(notebook.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")


def offending(text: str, allowed: dict[str, str]) -> list[str]:
    """The measured-looking numbers of `text` outside the `allowed` phrases (whitespace-insensitive), in context."""
    text = re.sub(r"\s+", " ", text)
    for phrase in allowed:
        text = text.replace(phrase, " ")
    return [text[max(0, m.start() - 50):m.end() + 30] for m in MEASURED.finditer(text)]


def prose(name: str) -> str:
    """The prose of one checked file: the README's text, a notebook's markdown (its LaTeX left out: the papers'
    equations), a YAML file's comments."""
    path = ROOT / name
    if name == "README.md":
        return prose_of_readme()
    if path.suffix == ".ipynb":
        return re.sub(r"\$[^$]*\$", "", markdown_of(path))
    return comments_of(path)


CHECKED = ["README.md", "params.yaml", *sorted(f"profiles/{p.name}" for p in (ROOT / "profiles").glob("*.yaml")),
           *sorted(f"notebooks/{p.name}" for p in (ROOT / "notebooks").glob("*.ipynb"))]


@pytest.mark.parametrize("name", CHECKED)
def test_no_typed_measurement_in_prose(name):
    found = offending(prose(name), ALLOWED.get(name, {}))
    assert not found, f"{name} states measured numbers (generate them or state none):\n" + "\n".join(found)


def test_allowed_phrases_are_still_there():
    """An allowance for a phrase the file no longer holds is stale."""
    texts = {name: prose(name) for name in ALLOWED}
    stale = [f"{f}: {p!r}" for f, phrases in ALLOWED.items() for p in phrases
             if p not in re.sub(r"\s+", " ", texts[f])]
    assert not stale, stale
