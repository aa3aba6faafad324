"""GPT-2's own test from the suite, for comparison counts (not collected by default).

``pytest tests/hf_conformance/gpt2_reference.py`` runs transformers' ``GPT2ModelTest`` in the
same environment and harness as ``test_transformers_suite.py``;
``benchmarks/conformance_counts.py`` runs both and prints them side by side.
"""

from tests.hf_conformance.suite import suite_module

GPT2ModelTest = suite_module("models.gpt2.test_modeling_gpt2").GPT2ModelTest
