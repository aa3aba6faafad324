"""Import transformers' own model test suite, read in place from ``../shared/transformers_tests``.

The suite (the mixins every model inside transformers must pass, version-matched to
transformers 5.24.0) is never copied into this repository: like the SMS data it is read from
the shared folder next to the checkout, or from ``$SCRATCHGPT_TRANSFORMERS_TESTS``. It is
imported as a package named after its folder, with that folder's parent on ``sys.path``.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
import unittest
from pathlib import Path

from scratchgpt.paths import REPO_ROOT

SUITE_ENV = "SCRATCHGPT_TRANSFORMERS_TESTS"
# The release the shared copy matches (its README): the mixins test against that release's
# internals, so under another one their failures would say nothing about our model.
SUITE_TRANSFORMERS_VERSION = "5.24.0"
# Test-only markers the suite puts on its tests (upstream registers them in its own conftest).
SUITE_MARKERS = (
    "generate",
    "accelerate_tests",
    "flash_attn_test",
    "flash_attn_3_test",
    "flash_attn_4_test",
    "torch_compile_test",
    "torch_export_test",
    "onnx_export_test",
    "executorch_export_test",
    "is_pipeline_test",
    "is_training_test",
    "is_tensor_parallel_test",
    "is_expert_parallel_test",
    "is_fsdp_test",
    "is_staging_test",
    "is_agent_test",
    "order",
)


def suite_dir() -> Path:
    """The suite: ``$SCRATCHGPT_TRANSFORMERS_TESTS`` or ``<repo>/../shared/transformers_tests``."""
    override = os.environ.get(SUITE_ENV)
    return Path(override) if override else REPO_ROOT.parent / "shared" / "transformers_tests"


def import_suite() -> types.ModuleType:
    """Import the suite as a package and return it (its modules are then importable by name)."""
    root = suite_dir().resolve()
    if not (root / "test_modeling_common.py").is_file():
        raise RuntimeError(
            f"transformers' test suite not found at {root}; set {SUITE_ENV} to its folder"
        )
    if str(root.parent) not in sys.path:
        sys.path.insert(0, str(root.parent))
    _stand_in_for_distributed_utils(root.name)
    return importlib.import_module(root.name)


def suite_module(name: str) -> types.ModuleType:
    """One module of the suite, e.g. ``suite_module("causal_lm_tester")``."""
    return importlib.import_module(f"{import_suite().__name__}.{name}")


def _stand_in_for_distributed_utils(package: str) -> None:
    """Let ``causal_lm_tester`` import when the suite lacks ``distributed_testing_utils``.

    The shared copy does not ship that module (the multi-process launcher of the tensor
    parallel and FSDP mixins), yet ``causal_lm_tester`` imports both mixins. A stand-in whose
    every function skips the calling test keeps the import working and reports those
    distributed tests as what they are here: not runnable in this environment, for GPT-2
    exactly as for us. It is used only when the real module is absent.
    """
    name = f"{package}.distributed_testing_utils"
    if name in sys.modules or (suite_dir() / "distributed_testing_utils.py").is_file():
        return

    def missing(*args, **kwargs):
        raise unittest.SkipTest(
            "needs transformers' tests/distributed_testing_utils.py, which the shared copy "
            "of the suite does not ship"
        )

    stand_in = types.ModuleType(name)
    stand_in.__getattr__ = lambda attr: missing  # every name it is asked for
    sys.modules[name] = stand_in
