"""Register the markers transformers' suite puts on its tests (``--strict-markers`` is on)."""

from tests.hf_conformance.suite import SUITE_MARKERS


def pytest_configure(config):
    for marker in SUITE_MARKERS:
        config.addinivalue_line("markers", f"{marker}: set by transformers' model test suite")
