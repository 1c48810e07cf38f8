"""Wiring only: each module connects flowlib's algorithms to a teacher, the result table and the claims.

`common` holds what every paper shares (artefact locations, teachers, ground truth, the baseline sweep);
each paper adds one module (`boss`, and later `bespoke`, `flowturbo`, `fgm`) that its notebook calls.
Reading a paper's experiment means opening its module here and following the imports down.
"""
