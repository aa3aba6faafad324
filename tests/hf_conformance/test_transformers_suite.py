"""transformers' own common model tests, run on scratchgpt's three classes.

The tester mirrors GPT-2's (``models/gpt2/test_modeling_gpt2.py`` in the suite): the same
``CausalLMModelTest`` base, so the same mixins (model, generation, pipeline, training, tensor
parallel, FSDP) and a ``ConfigTester`` run. ``ScratchGPTForCausalLM`` is the generative class.
Nothing is skipped by hand: a capability we lacked would be declared through the mixins' own
class attributes (``has_attentions``, ``test_resize_embeddings``...) with the reason; none is
needed today. docs/CONFORMANCE.md lists what still differs from GPT-2 and why.
"""

from __future__ import annotations

import unittest

import pytest
import transformers
from transformers.models.auto import modeling_auto

import scratchgpt.folder  # noqa: F401  (registers AutoConfig and the AutoModel* classes)
from scratchgpt_modeling.configuration_scratchgpt import ScratchGPTConfig
from scratchgpt_modeling.modeling_scratchgpt import (
    ScratchGPTForCausalLM,
    ScratchGPTForSequenceClassification,
    ScratchGPTModel,
)
from tests.hf_conformance.suite import SUITE_TRANSFORMERS_VERSION, suite_module

if transformers.__version__ != SUITE_TRANSFORMERS_VERSION:
    pytest.skip(
        f"the shared suite matches transformers {SUITE_TRANSFORMERS_VERSION}, "
        f"this environment has {transformers.__version__}",
        allow_module_level=True,
    )

causal_lm_tester = suite_module("causal_lm_tester")

# Which class is which head, in the tables the suite reads by name (it looks class names up in
# transformers' MODEL_*_MAPPING_NAMES to decide e.g. which classes get labels or are trained).
# The Auto classes already know us: importing scratchgpt.folder registers AutoConfig/AutoModel*.
HEAD_TABLES = {
    "MODEL_MAPPING_NAMES": ScratchGPTModel,
    "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES": ScratchGPTForCausalLM,
    "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES": ScratchGPTForSequenceClassification,
}


@pytest.fixture(scope="module", autouse=True)
def scratchgpt_in_head_tables():
    """Our entries in transformers' head tables for this module only, restored afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        for table, model_class in HEAD_TABLES.items():
            names = getattr(modeling_auto, table)
            patch.setitem(names, ScratchGPTConfig.model_type, model_class.__name__)
        yield


class ScratchGPTModelTester(causal_lm_tester.CausalLMModelTester):
    base_model_class = ScratchGPTModel
    # Set explicitly: the suite infers them from `transformers.models.<name>` module layout,
    # which an out-of-tree package does not have.
    config_class = ScratchGPTConfig
    causal_lm_class = ScratchGPTForCausalLM
    sequence_classification_class = ScratchGPTForSequenceClassification

    def get_config(self):
        config = super().get_config()
        # GPT-2's tester runs with GPT2Config's default dropout (0.1); ours defaults to 0.
        config.drop_rate = 0.1
        return config


class ScratchGPTModelTest(causal_lm_tester.CausalLMModelTest, unittest.TestCase):
    model_tester_class = ScratchGPTModelTester
