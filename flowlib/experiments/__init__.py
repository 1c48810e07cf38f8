"""Wiring only: each module connects flowlib's algorithms to a teacher, the result table and the claims.

`common` holds what every paper shares (teachers, ground truth, the baseline sweep); each paper has one module
(`boss`, `bespoke`, `flowturbo`, `fgm`, and `combos` for the combinations) that its notebook calls. A paper's module
holds its whole experiment: the steps its notebook runs, then its claims as data (`CLAIMS`, one `ClaimSpec` each)
with one registered check per claim (see `flowlib.claims`). Paths come from `params.layout` (`flowlib.layout`).
"""
