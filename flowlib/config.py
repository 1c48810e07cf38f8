"""The one place that reads `params.yaml`: it validates a file against the schema (`flowlib.schema`), reports **all**
problems at once, one line each, `key.path: given → expected`, and resolves the paths into `Params`.

- Smoke mode (`FLOWLIB_SMOKE=1`, set by the test command) applies the file's `smoke:` overrides (checked by
  the same schema) and sends every artefact to `$FLOWLIB_SMOKE_DIR`, so nbval never touches the reports.
- Profiles: `params.yaml` is the active profile (the CPU default); `profiles/<name>.yaml` holds the others.
- CLI: `python -m flowlib.config check [FILE]`, `use NAME`, `schema` (the JSON Schema that editors use).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from pydantic import ValidationError

from .artifacts import write_text
from .device import resolve_device
from .errors import FlowlibError
from .flow import TrainConfigError
from .layout import Layout
from .schema import (  # noqa: F401 - the sections are re-exported: flowlib.config is where callers find them
    SECTIONS,
    AutoencoderParams,
    BespokeParams,
    BossParams,
    CombosParams,
    DataParams,
    EvalParams,
    FGMParams,
    FlowTurboParams,
    MixtureConfig,
    MLPConfig,
    ParamsFile,
    Problem,
    TeacherParams,
    UNetConfig,
    _path,
    _problem,
    _show,
)

SCHEMA_FILE = "params.schema.json"


class ConfigError(FlowlibError, ValueError):
    """A parameter file that is malformed, has unknown keys or invalid values; `problems` lists each one."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = problems or [message]


# ------------------------------------------------------------------------------------- what callers get
@dataclass
class Params:
    """A validated parameter file with its paths resolved: what notebooks and flowlib functions take."""

    profile: str
    root: Path
    artifacts: Path
    reports: Path
    data: DataParams
    eval: EvalParams
    teachers: dict[str, TeacherParams]
    boss: BossParams
    autoencoders: dict[str, AutoencoderParams] = field(default_factory=dict)
    bespoke: BespokeParams = field(default_factory=BespokeParams)
    flowturbo: FlowTurboParams = field(default_factory=FlowTurboParams)
    fgm: FGMParams = field(default_factory=FGMParams)
    combos: CombosParams = field(default_factory=CombosParams)
    smoke: bool = False
    device: str = "auto"
    output_root: Path | None = None  # the folder artifacts/ and reports/ are under (root, the smoke dir, a rank's scratch)

    @property
    def torch_device(self) -> torch.device:
        """The device the `device` setting (or FLOWLIB_DEVICE) resolves to on this machine, or a `DeviceError`."""
        return resolve_device(self.device)

    @property
    def layout(self) -> Layout:
        """Where every stage's artefacts and reports go (`flowlib.layout.Layout`)."""
        return Layout(self.artifacts, self.reports)

    def teacher(self, name: str) -> TeacherParams:
        """The teacher called `name`, or a clear error listing the configured ones."""
        if name not in self.teachers:
            raise ConfigError(f"No teacher {name!r} in profile {self.profile!r}; configured: {sorted(self.teachers)}.")
        return self.teachers[name]


# ---------------------------------------------------------------------------------------- error messages
_EXPECTED = {
    "int_parsing": "an integer", "int_type": "an integer", "int_from_float": "an integer",
    "float_parsing": "a number", "float_type": "a number", "string_type": "text", "bool_type": "true or false",
    "dict_type": "a mapping of keys to values", "model_type": "a mapping of keys to values", "list_type": "a list",
    "missing": "this key (it is required)", "string_pattern_mismatch": "a 64-character lowercase hex SHA-256",
}


_BOUNDS = {"greater_than": ">", "greater_than_equal": "≥", "less_than": "<", "less_than_equal": "≤"}


def _schema_at(loc: tuple[Any, ...]) -> tuple[dict[str, Any], tuple[Any, ...]]:
    """The JSON Schema node of the key at `loc` (plain data, references followed) and `loc` without the tags pydantic
    inserts for a model chosen by its `arch`: what the messages name (the key's type, a section's known keys)."""
    root = ParamsFile.model_json_schema()  # plain data: what editors check against too

    def follow(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
        return node

    node, shown, tagged = follow(root), [], False
    for part in loc:
        if tagged:  # the tag of a model chosen by `arch`: step into that model, do not show the tag
            mapping = node["discriminator"]["mapping"]
            node, tagged = (follow({"$ref": mapping[part]}) if part in mapping else {}), False
            continue
        if isinstance(part, int):
            node = follow(node.get("items", {}))
        elif part in node.get("properties", {}):
            node = follow(node["properties"][part])
        else:
            node = follow(node["additionalProperties"]) if isinstance(node.get("additionalProperties"), dict) else {}
        shown.append(part)
        node = next((follow(n) for n in node.get("anyOf", []) if n.get("type") != "null"), node)  # X | None: X
        tagged = "discriminator" in node
    return node, tuple(shown)


def _expand(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """pydantic's errors, with a nested `TrainConfig`'s own errors (raised from its constructor) under their keys."""
    out = []
    for error in errors:
        inner = error.get("ctx", {}).get("error")
        if isinstance(inner, TrainConfigError):
            out += [{**e, "loc": tuple(error["loc"]) + tuple(e["loc"])} for e in inner.errors]
        else:
            out.append(error)
    return out


def _describe(error: dict[str, Any]) -> Problem:
    """One pydantic error as `key.path: given → expected`."""
    loc = tuple(error["loc"])
    kind, ctx = error["type"], error.get("ctx", {})
    if kind == "extra_forbidden":
        parent, shown = _schema_at(loc[:-1])
        known = sorted(parent.get("properties", {}))
        return _problem(shown + loc[-1:], f"unknown key → one of the known keys {known}")
    node, shown = _schema_at(loc)
    given = "nothing" if kind == "missing" else _show(error.get("input"))
    if kind in _EXPECTED:
        expected = _EXPECTED[kind]
    elif kind in _BOUNDS:
        noun = "an integer" if node.get("type") == "integer" else "a number"
        expected = f"{noun} {_BOUNDS[kind]} {next(iter(ctx.values()))}"
    elif kind == "literal_error":
        expected = f"one of {ctx.get('expected')}"
    elif kind == "union_tag_invalid":
        expected = f"arch one of {ctx.get('expected_tags')}"
        given = _show(ctx.get("tag"))
    elif kind == "too_short":
        expected = f"at least {ctx.get('min_length')} entr{'y' if ctx.get('min_length') == 1 else 'ies'}"
    else:
        expected = error["msg"].removeprefix("Input should be ").removeprefix("Value error, ")
    return _problem(shown, f"{given} → {expected}")


def _deep_update(base: dict, overrides: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        out[key] = _deep_update(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _overridden(problem: Problem, smoke: dict[str, Any]) -> bool:
    """Whether the key a problem names is set by the smoke overrides (then it is reported as `smoke.<key>`)."""
    node: Any = smoke
    for key in problem.loc:
        if isinstance(key, int):  # a list entry: the override sets the whole list
            continue
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def validate(raw: Any) -> tuple[ParamsFile | None, list[Problem]]:
    """Check a raw mapping against the schema; return the typed file (or None) and every problem found."""
    if not isinstance(raw, dict):
        return None, [_problem((), f"{_show(raw)} → a mapping of sections (profile, paths, data, eval, teachers, ...)")]
    try:
        pf = ParamsFile.model_validate(raw)
    except ValidationError as exc:
        return None, [_describe(e) for e in _expand(exc.errors())]
    return pf, pf.rules(pf)


def check_raw(raw: Any, where: str = "params") -> ParamsFile:
    """Validate a raw file and its smoke overrides; raise one `ConfigError` listing every problem."""
    pf, found = validate(raw)
    problems = [p.text for p in found]
    smoke = raw.get("smoke") if isinstance(raw, dict) else None
    if isinstance(smoke, dict) and smoke:
        _, smoke_problems = validate(_deep_update(raw, smoke))
        # under an overridden key: a smoke problem. Elsewhere it is the plain file's own (reported above), unless the
        # plain file has none: then the overrides broke a rule that ties an overridden key to one they leave alone
        problems += [f"{'smoke.' * _overridden(p, smoke)}{p.text} (with the smoke overrides applied)"
                     for p in smoke_problems if _overridden(p, smoke) or not found]
    if problems:
        n = len(problems)
        raise ConfigError(f"{where}: {n} problem{'s' * (n > 1)}:\n" + "\n".join(f"  - {p}" for p in problems), problems)
    assert pf is not None
    return pf


def parse_params(raw: dict[str, Any], root: Path, smoke: bool = False, smoke_dir: Path | None = None,
                 where: str = "params") -> Params:
    """Validate a raw parameter mapping (as read from YAML) into `Params`."""
    pf = check_raw(raw, where)
    if smoke and pf.smoke:
        pf = ParamsFile.model_validate(_deep_update(raw, pf.smoke))
    base = smoke_dir if smoke and smoke_dir is not None else root
    base = Path(os.environ.get("FLOWLIB_OUTPUT_DIR") or base)  # set by flowlib.launch for ranks > 0: their scratch
    return Params(profile=pf.profile, root=root, artifacts=base / pf.paths.artifacts, reports=base / pf.paths.reports,
                  smoke=smoke, device=pf.device, output_root=base, **{name: getattr(pf, name) for name in SECTIONS})


def repo_root(start: str | Path | None = None) -> Path:
    """The nearest directory at or above `start` (default: cwd) holding `dvc.yaml`; cwd if none."""
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "dvc.yaml").is_file():
            return d
    return here


def smoke_enabled() -> bool:
    """True when the environment asks for the tiny test-suite setting."""
    return os.environ.get("FLOWLIB_SMOKE", "").lower() in ("1", "true", "yes")


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key written twice in one mapping (plain YAML silently keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(f"the key {key!r} appears twice in one block (lines {seen[key] + 1} and "
                                  f"{key_node.start_mark.line + 1}); YAML would silently keep the last. Keep one.")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> Any:
    """A YAML file's content, or a `ConfigError` naming the file (missing, empty, invalid, a key written twice)."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"Parameter file {path} is a directory; pass the YAML file (e.g. params.yaml).")
    if not path.is_file():
        raise ConfigError(f"Parameter file {path} not found; run from the repository (it holds params.yaml).")
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except ConfigError as exc:
        raise ConfigError(f"{path.name}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if raw is None:
        raise ConfigError(f"Parameter file {path.name} is empty; it needs at least a `teachers:` block (git checkout "
                          "params.yaml restores the default, profiles/ holds the others).")
    return raw


def load_params(path: str | Path = "params.yaml", smoke: bool | None = None) -> Params:
    """Read and validate a parameter file (relative paths resolve against the repository root).

    `smoke=None` follows `FLOWLIB_SMOKE`; smoke artefacts go to `$FLOWLIB_SMOKE_DIR` (default: a fixed
    directory under the system temp dir).
    """
    root = repo_root()
    path = Path(path)
    path = path if path.is_absolute() else root / path
    smoke = smoke_enabled() if smoke is None else smoke
    smoke_dir = Path(os.environ.get("FLOWLIB_SMOKE_DIR", Path(tempfile.gettempdir()) / "flowlib-smoke"))
    params = parse_params(read_yaml(path), root, smoke=smoke, smoke_dir=smoke_dir, where=path.name)
    params.data.root = str(root / params.data.root)
    params.data.inception_weights = str(root / params.data.inception_weights)
    return params


def profile_file(name: str, root: Path | None = None) -> Path:
    """`profiles/<name>.yaml`, or a `ConfigError` listing the profiles there."""
    source = (root or repo_root()) / "profiles" / f"{name}.yaml"
    if not source.is_file():
        available = sorted(p.stem for p in source.parent.glob("*.yaml"))
        raise ConfigError(f"No profile {name!r}; available: {available} (the default lives in git's params.yaml).")
    return source


def profile_text(name: str, root: Path | None = None) -> str:
    """`profiles/<name>.yaml` validated, as `use` writes it onto params.yaml (its schema link made local)."""
    source = profile_file(name, root or repo_root())
    check_raw(read_yaml(source), f"profiles/{name}.yaml")
    return _as_params(source)


def _as_params(source: Path) -> str:
    return source.read_text().replace(f"$schema=../{SCHEMA_FILE}", f"$schema={SCHEMA_FILE}", 1)


def committed_params(root: Path) -> str | None:
    """params.yaml as git's HEAD has it (the default profile), or None outside a git checkout."""
    try:
        done = subprocess.run(["git", "show", "HEAD:params.yaml"], cwd=root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def unsaved_params(root: Path) -> bool:
    """True when params.yaml holds edits that no profile and no commit keeps (overwriting it would lose them)."""
    target = root / "params.yaml"
    if not target.is_file():
        return False
    text = target.read_text()
    known = {committed_params(root)} | {_as_params(p) for p in (root / "profiles").glob("*.yaml")}
    return text not in known


def use_profile(name: str, root: Path | None = None, force: bool = False) -> Path:
    """Validate `profiles/<name>.yaml` and copy it onto `params.yaml` (the active profile); refuse to overwrite edits
    of params.yaml that no profile or commit keeps, unless `force`."""
    root = root or repo_root()
    text = profile_text(name, root)
    if not force and unsaved_params(root):
        raise ConfigError(f"params.yaml has edits that neither git nor any profile keeps; `use {name}` would overwrite "
                          "them. Keep them as a profile (cp params.yaml profiles/mine.yaml, set `profile: mine`), or see "
                          f"them with `git diff params.yaml`; to overwrite anyway: python -m flowlib.config use {name} "
                          "--force.")
    write_text(root / "params.yaml", text)
    return root / "params.yaml"


def profile_teachers(name: str, root: Path | None = None) -> list[str]:
    """The teachers of `profiles/<name>.yaml` (validated), e.g. to pick a profile's tables out of reports/."""
    return list(check_raw(read_yaml(profile_file(name, root)), f"profiles/{name}.yaml").teachers)


def json_schema() -> str:
    """The JSON Schema of params.yaml, for editors with a YAML language server (committed as params.schema.json)."""
    schema = ParamsFile.model_json_schema()
    schema["title"] = "flowlib params.yaml"
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flowlib.config", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("check", help="validate a parameter file").add_argument("file", nargs="?", default="params.yaml")
    use = sub.add_parser("use", help="make profiles/<name>.yaml the active params.yaml")
    use.add_argument("name")
    use.add_argument("--force", action="store_true", help="overwrite edits of params.yaml that no profile keeps")
    sub.add_parser("schema", help=f"print the JSON Schema of params.yaml (committed as {SCHEMA_FILE})")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "check":
            params = load_params(args.file, smoke=False)
            print(f"{args.file}: profile {params.profile!r}, teachers {sorted(params.teachers)}: OK")
        elif args.cmd == "schema":
            sys.stdout.write(json_schema())
        else:
            path = use_profile(args.name, force=args.force)
            print(f"params.yaml is now profile {args.name!r} ({path}); `git checkout params.yaml` restores the default.")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
