"""Options of the whole test suite."""
from __future__ import annotations


def pytest_addoption(parser):
    parser.addoption("--update-snapshots", action="store_true", default=False,
                     help="rewrite tests/codegen/snapshots/*.py.snap from the current code generator "
                          "(review the diff before committing)")
