"""Claims as data: verdict rules, the claims table on disk, and BOSS's verdicts computed from fixed result rows."""
import copy
import math
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from flowlib.claims import (
    Claim,
    ClaimError,
    ClaimSpec,
    Evidence,
    Finding,
    PaperClaims,
    case,
    check_claims,
    compare,
    read_claims,
    unless_converged,
    verdict,
    write_claims,
)
from flowlib.config import parse_params
from flowlib.solvers import uniform_grid

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("checks,expected", [
    ([True, True], "holds"), ([True, False], "partly holds"), ([False, False], "does not hold"),
    ([], "not run"), ([None], "not run"), ([math.nan], "not run"), ([True, None], "holds"),
])
def test_verdict_rule(checks, expected):
    assert verdict(checks) == expected


@pytest.mark.parametrize("a,b,sa,sb,expected", [
    (10.0, 12.0, 0.5, 0.5, "better"),          # gap 2 > 2 x sqrt(0.5)
    (10.0, 11.0, 0.5, 0.5, "within noise"),    # gap 1 < 1.41
    (12.0, 10.0, 0.5, 0.5, "worse"),
    (10.0, 10.5, math.nan, math.nan, "better"),  # no band measured: the difference counts
    (math.nan, 1.0, 0.1, 0.1, "not measured"),
])
def test_compare_uses_the_noise_band(a, b, sa, sb, expected):
    assert compare(a, b, sa, sb, sigmas=2.0) == expected
    assert case(compare(a, b, sa, sb)) == ({"better": True, "not measured": None}.get(expected, False))


def test_claims_round_trip_and_schema(tmp_path):
    claims = [Claim("boss", "moons", f"c{i}", "a claim", "a < b", "-", "1 vs 2", v)
              for i, v in enumerate(["holds", "not run"])]
    df = write_claims(claims, tmp_path, "BOSS on moons")
    folder = tmp_path / "claims"
    assert (folder / "boss-moons.csv").is_file() and "# BOSS on moons" in (folder / "boss-moons.md").read_text()
    back = read_claims(tmp_path)
    assert back.equals(df) and list(back["verdict"]) == ["holds", "not run"]
    with pytest.raises(ClaimError, match="not one of"):
        Claim("boss", "moons", "x", "c", "k", "-", "-", "mostly")
    with pytest.raises(ClaimError, match="one paper on one teacher"):
        write_claims([claims[0], Claim("boss", "digits", "x", "c", "k", "-", "-", "holds")], tmp_path, "t")
    with pytest.raises(ClaimError, match="No claims tables"):
        read_claims(tmp_path / "nowhere")


def _row(solver, nfe, quality, rmse, dist, method="boss", trained=0, std=0.2, converged=None):
    row = {"dataset": "moons", "teacher": "moons", "method": method, "solver": solver, "nfe": nfe, "quality": quality,
           "quality_std": 0.01, "quality_metric": "sliced-w2", "gt_distance": dist, "gt_distance_std": std,
           "gt_distance_metric": "sliced-w2-to-gt", "rmse_to_gt": rmse, "ms_per_sample": 0.1, "extra_params": 0,
           "train_seconds": 1.0, "trained_params": trained}
    if converged is not None:  # a trained row: how its training ended
        row.update(train_steps=2000 if converged else 6000, converged=converged)
    return row


def _boss_setup(bellman_d6, converged=(True, True, True, True)):
    raw = copy.deepcopy(yaml.safe_load((ROOT / "params.yaml").read_text()))
    raw["boss"].update(n_fine=12, nfes=[4, 6], finetune_k=[4])
    raw["combos"]["k"] = 4
    params = parse_params(raw, ROOT)
    rows = [_row("euler", 4, 0.40, 0.30, 20.0, "baseline"), _row("euler", 6, 0.25, 0.20, 12.0, "baseline"),
            _row("bellman-euler", 4, 0.35, 0.25, 10.0), _row("bellman-euler", 6, 0.2, 0.15, bellman_d6),
            _row("bellman-euler+ft-full", 4, 0.10, 0.05, 2.0, trained=1000, converged=converged[0]),
            _row("bellman-euler+ft-lora4", 4, 0.20, 0.10, 6.0, trained=40, converged=converged[1]),
            _row("uniform-reflow", 4, 0.12, 0.07, 3.0, "reflow", converged=converged[2]),
            _row("distill-4-reflow", 4, 0.08, 0.06, 1.5, "reflow", converged=converged[3])]
    grids = {"times": uniform_grid(12), "paths": {4: torch.tensor([0, 1, 5, 10, 12]), 6: torch.tensor([0, 2, 4, 7, 9, 11, 12])},
             "dp_value": {4: 2.0, 6: 1.0}, "seconds": 0.5, "flops": 5e8}
    return pd.DataFrame(rows), params, grids


def _boss(df, params, grids, teacher_seconds, teacher_flops):
    """BOSS's claims on moons by id, from the rows `df` and the evidence."""
    from flowlib.experiments import boss

    ev = boss.BossEvidence(df, params, "moons", grids=grids, teacher_seconds=teacher_seconds, teacher_flops=teacher_flops)
    return {c.claim_id: c for c in check_claims(boss.CLAIMS, ev)}


def test_boss_verdicts_follow_the_rows():
    df, params, grids = _boss_setup(bellman_d6=8.0)
    claims = _boss(df, params, grids, 100.0, 1e11)
    assert claims["bellman-beats-uniform"].verdict == "holds"            # closer to the teacher beyond the band at K = 4, 6
    assert claims["grid-shape"].verdict == "holds"                        # 1,4,5,2 and 2,2,3,2,2,1 steps: ends < max
    assert claims["dp-value-tracks-error"].verdict == "holds"
    assert claims["straightening-improves"].verdict == "holds"            # 10 -> 2
    assert claims["lora-close-to-full"].verdict == "does not hold"        # 6 > 1.25 x 2, beyond the band
    assert claims["beats-reflow"].verdict == "does not hold"              # distill-4 (1.5) beats BOSS (2.0)
    assert claims["phase1-is-cheap"].verdict == "holds"                   # 5e8 FLOPs < 5% of 1e11
    ours = claims["bellman-beats-uniform"].ours
    assert "K=4: to GT 20±0.2 → 10±0.2 (better); FID 0.4±0.01 → 0.35±0.01 (better)" in ours
    assert "4.0% of parameters" in claims["lora-close-to-full"].ours
    assert all(c.paper == "boss" and c.teacher == "moons" and c.paper_number for c in claims.values())


def test_boss_verdict_changes_with_the_numbers():
    df, params, grids = _boss_setup(bellman_d6=11.5)  # within the band of uniform (12 ± 0.2) at K = 6
    claims = _boss(df, params, grids, 5.0, 5e9)
    assert claims["bellman-beats-uniform"].verdict == "partly holds" and "11.5±0.2 (within noise)" in claims[
        "bellman-beats-uniform"].ours
    assert claims["phase1-is-cheap"].verdict == "does not hold"           # 5e8 FLOPs are 10 % of 5e9
    assert "wall time 0.50 s vs 5 s" in claims["phase1-is-cheap"].ours    # wall time beside, not judged
    missing = df[df["solver"] != "uniform-reflow"]
    claims = _boss(missing, params, grids, 5.0, 5e9)
    assert claims["beats-reflow"].verdict == "not run"                    # a baseline row is missing, not lost


def test_a_negative_verdict_on_an_unconverged_finetune_is_inconclusive():
    # LoRA stopped at its cap, still improving: "LoRA close to full" cannot fail on it
    df, params, grids = _boss_setup(bellman_d6=8.0, converged=(True, False, True, True))
    claims = _boss(df, params, grids, 100.0, 1e11)
    lora = claims["lora-close-to-full"]
    assert lora.verdict == "inconclusive"
    assert "bellman-euler+ft-lora4@4 stopped at its cap of 6000 steps, still improving" in lora.ours
    assert "LoRA 6000 steps, cap, still improving, full 2000 steps, plateau" in lora.ours
    # beats-reflow is stated at equal iterations: an unconverged reflow does not make it inconclusive, BOSS does
    df, params, grids = _boss_setup(bellman_d6=8.0, converged=(True, True, False, False))
    assert _boss(df, params, grids, 100.0, 1e11)["beats-reflow"].verdict == \
        "does not hold"
    df, params, grids = _boss_setup(bellman_d6=8.0, converged=(False, True, True, True))
    claims = _boss(df, params, grids, 100.0, 1e11)
    assert claims["beats-reflow"].verdict == "inconclusive"
    assert claims["straightening-improves"].verdict == "holds"  # a positive verdict stands: the rows say how they trained


def test_inconclusive_is_a_verdict_of_its_own():
    claim = Claim("boss", "moons", "x", "c", "k", "-", "1 vs 2", "partly holds")
    assert unless_converged(claim, []).verdict == "partly holds"
    assert unless_converged(claim, ["a stopped at its cap"]).verdict == "inconclusive"
    assert unless_converged(replace(claim, verdict="holds"), ["a stopped at its cap"]).verdict == "holds"
    assert unless_converged(replace(claim, verdict="not run"), ["a stopped at its cap"]).verdict == "not run"


@pytest.mark.parametrize("paper", ["boss", "bespoke", "flowturbo", "fgm"])
def test_every_claim_has_one_check_and_a_complete_record(paper):
    """Each paper's table (its experiments module's CLAIMS, built at import: a testable claim without a check, or a check
    without a claim, fails there) names the paper, and every check reads that paper's evidence type."""
    import importlib
    import inspect
    import typing

    module = importlib.import_module(f"flowlib.experiments.{paper}")
    table = module.CLAIMS
    assert isinstance(table, PaperClaims) and table.paper == paper and issubclass(table.evidence, Evidence)
    assert table.specs and all(s.paper == paper and s.claim and s.paper_number for s in table.specs)
    assert all(s.criterion for s in table.specs if s.untestable is None) and any(s.untestable for s in table.specs)
    for check in table.checks.values():
        (arg,) = inspect.signature(check).parameters
        assert typing.get_type_hints(check, vars(module))[arg] is table.evidence, check.__name__


@dataclass(frozen=True, eq=False)
class ToyEvidence(Evidence):
    note: str


def test_a_claim_is_one_entry_and_one_function():
    """The table is all it takes: a new paper's claims come out of check_claims with their verdicts, untestable
    claims as `not run`, exact-teacher reasons applied, and criterion fields filled from the finding."""
    df, params, _ = _boss_setup(bellman_d6=8.0)
    specs = [ClaimSpec("toy", "euler-improves", "Euler improves with NFE", "at {k} NFE, {rule}", "-"),
             ClaimSpec("toy", "weights", "Weights matter", "more weights help", "-", exact="no weights"),
             ClaimSpec("toy", "paper-only", "Works on ImageNet", "", "FID 2", untestable="no ImageNet here")]
    with pytest.raises(ClaimError, match=r"claims without a check \['euler-improves', 'weights'\]"):
        PaperClaims("toy", ToyEvidence, specs, {})
    with pytest.raises(ClaimError, match=r"checks without a claim \['paper-only'\]"):
        PaperClaims("toy", ToyEvidence, specs, dict.fromkeys(["euler-improves", "weights", "paper-only"], print))
    with pytest.raises(ClaimError, match="must all name that paper"):
        PaperClaims("other", ToyEvidence, specs, {})
    table = PaperClaims("toy", ToyEvidence, specs, {
        "euler-improves": lambda ev: Finding(ev.vs("euler", 6, "euler", 4), [case(ev.vs("euler", 6, "euler", 4))],
                                             fields={"k": 6}),
        "weights": lambda ev: Finding(ev.note, [True]),
    })
    with pytest.raises(ClaimError, match="The toy claims read ToyEvidence, not Evidence"):
        check_claims(table, Evidence(df, params, "moons"))
    with pytest.raises(ClaimError, match=r"check_claims\(CLAIMS, evidence\)"):
        check_claims("toy", ToyEvidence(df, params, "moons", note="here"))   # the old call, a paper's name first
    with pytest.raises(TypeError, match="note"):
        ToyEvidence(df, params, "moons")          # a missing piece of evidence fails where the evidence is built
    claims = check_claims(table, ToyEvidence(df, params, "moons", note="here"))
    assert [(c.claim_id, c.verdict) for c in claims] == [("euler-improves", "holds"), ("weights", "holds"),
                                                          ("paper-only", "not run")]
    assert claims[0].criterion == "at 6 NFE, beyond the noise band (2 standard deviations of the difference)"
    assert claims[0].ours == "better" and claims[1].ours == "here" and claims[2].ours == "not run: no ImageNet here"
    ring = check_claims(table, ToyEvidence(df, params, "ring", note="here"))  # the exact teacher: not run, with reason
    assert ring[1].verdict == "not run" and "no weights" in ring[1].ours and ring[0].verdict == "holds"
