"""Project wiring: pins agree, notebooks are committed clean and parameterised, DVC stages match the files."""
import json
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert set(p for p in pip if not p.startswith("-e")) == pins
    assert all("==" in p for p in pins)
    assert "python=3.11" in env["dependencies"]


def test_notebooks_are_clean_and_parameterised():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert [n.stem for n in notebooks][:3] == ["00_data", "00b_autoencoders", "01_teacher"]
    for nb_path in notebooks:
        nb = json.loads(nb_path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), f"{nb_path.name} has outputs"
        tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1 and nb["cells"][0]["cell_type"] == "markdown", nb_path.name


def test_dvc_stages_point_at_existing_notebooks():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert set(stages) >= {"data", "teacher", "baselines", "report"}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        if name == "code":   # writes the notebooks' code manifests (tests/test_stage_deps.py)
            continue
        notebook = next(w for w in body["cmd"].split() if w.endswith(".ipynb"))
        assert (ROOT / notebook).is_file() and notebook in body["deps"], name


def test_notebooks_that_plot_check_every_figure_is_shown():
    """The last cell of a plotting notebook runs check_figures_shown(), which fails under nbval (and papermill) when a
    written figure was not displayed; conftest.py then matches its count against the image outputs."""
    for nb_path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        sources = ["".join(c["source"]) for c in json.loads(nb_path.read_text())["cells"] if c["cell_type"] == "code"]
        if any("flowlib.plots import" in s for s in sources):
            assert "check_figures_shown()" in sources[-1], nb_path.name


def test_jupyterlab_opens_without_the_news_prompt():
    settings = ROOT / ".jupyter/lab/user-settings/@jupyterlab/apputils-extension/notification.jupyterlab-settings"
    assert '"fetchNews": "false"' in settings.read_text()
    assert "JUPYTERLAB_SETTINGS_DIR" in (ROOT / "Makefile").read_text()
