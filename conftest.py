"""Test-suite settings: notebooks under nbval run in smoke mode, writing into a throw-away directory.

The nbval kernel inherits this process's environment, so setting the variables here covers both
`make test` and a bare `pytest`.
"""
import os
import tempfile

os.environ.setdefault("FLOWLIB_SMOKE", "1")
os.environ.setdefault("FLOWLIB_SMOKE_DIR", tempfile.mkdtemp(prefix="flowlib-smoke-"))
os.environ.setdefault("MPLBACKEND", "Agg")
