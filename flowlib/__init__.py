"""flowlib: shared code to reproduce BOSS, Bespoke solvers, FlowTurbo and Flow Generator Matching.

Every method is a sampler (`sampler(noise) -> samples`, `.nfe`, `.name`), evaluated once by
`flowlib.evaluate.evaluate`. Convention: t = 0 is noise, t = 1 is data; linear path x_t = (1 - t) x0 + t x1.
"""
__version__ = "0.1.0"
