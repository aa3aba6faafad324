"""FSDP2 sharding of our models, proven on the CPU with two gloo processes.

``tests/fsdp_worker.py`` runs under ``accelerate launch --config_file configs/fsdp_gpt2.yaml
--num_processes 2``: accelerate's own FSDP2 preparation shards the models as the config says,
and the loop's FSDP pieces (``scratchgpt.training.fsdp``, ``training.outputs.final_model``)
gather the weights. accelerate selects FSDP only on accelerator devices, so the loop itself
cannot run sharded here: these tests cover its pieces, with fp32 (the config's bf16 is a GPU
setting).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from accelerate.utils import DistributedType
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from scratchgpt.cli import finetune_main
from scratchgpt.training import loop as train
from scratchgpt.training.fsdp import unsupported_under_fsdp
from scratchgpt_modeling.modeling_scratchgpt import (
    ScratchGPTForCausalLM,
    ScratchGPTForSequenceClassification,
    ScratchGPTPreTrainedModel,
)
from tests import fsdp_worker as worker
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[1]
CLASSIFIERS = ("classifier", "full_fine_tuning")  # default recipe; --trainable all + checkpointing
CASES = (*CLASSIFIERS, "causal_lm")
BLOCKS = [f"gpt.blocks.{i}" for i in range(worker.tiny_config().n_layers)]


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("fsdp")
    command = [sys.executable, "-m", "accelerate.commands.launch",
               "--config_file", str(ROOT / "configs" / "fsdp_gpt2.yaml"), "--num_processes", "2",
               "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()),
               str(ROOT / "tests" / "fsdp_worker.py"), str(out)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT,
                          stdin=subprocess.DEVNULL)  # fmt: skip
    if done.returncode:
        pytest.fail(f"the 2-process FSDP run failed:\n{done.stdout[-2000:]}\n{done.stderr[-8000:]}")
    return out, torch.load(out / "results.pt")


def assert_same_state(actual: dict, expected: dict, atol: float) -> None:
    assert actual.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], atol=atol, rtol=0, msg=key)


def test_the_launcher_reads_our_fsdp_config(fsdp_run):
    plugin = fsdp_run[1]["plugin"]
    assert plugin["world_size"] == 2
    assert plugin["version"] == 2
    assert plugin["wrap"] == ["ScratchGPTBlock"]
    assert plugin["state_dict_type"].endswith("SHARDED_STATE_DICT")
    # What accelerate (and transformers) wrap when a config names no class.
    assert ScratchGPTPreTrainedModel._no_split_modules == ["ScratchGPTBlock"]


def test_each_block_is_its_own_fsdp_unit(fsdp_run):
    results = fsdp_run[1]
    for case in CLASSIFIERS:  # the loop's wrapper: each block, then the root
        assert results[case]["units"] == sorted(["", *(f"model.{b}" for b in BLOCKS)])
    # A bare causal LM also gets accelerate 1.15's tail unit: the tied embedding and head with
    # the final norm (one unit, since a shared parameter may belong to one FSDP group only).
    tail = ["gpt.final_norm", "gpt.tok_emb", "out_head"]
    assert results["causal_lm"]["units"] == sorted(["", *BLOCKS, *tail])


@pytest.mark.parametrize("case", CASES)
def test_sharded_steps_match_one_process_on_the_whole_batch(fsdp_run, case):
    result = fsdp_run[1][case]
    reference, sharded = result["reference"], result["sharded"]
    torch.testing.assert_close(sharded["losses"], reference["losses"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sharded["norms"], reference["norms"], rtol=1e-5, atol=1e-6)
    assert min(reference["norms"]) > worker.MAX_GRAD_NORM  # every step was clipped
    # Adam's first steps move every trained weight by about lr; the shards agree far closer.
    assert_same_state(result["gathered"], reference["state"], atol=2e-6)
    moved = max((reference["state"][k] - v).abs().max() for k, v in result["initial"].items())
    assert moved > 100 * 2e-6


@pytest.mark.parametrize("case", CASES)
def test_sharded_checkpoint_resumes_to_the_same_steps(fsdp_run, case):
    result = fsdp_run[1][case]
    resumed, sharded = result["resumed"], result["sharded"]
    assert resumed["losses"] == sharded["losses"][worker.SAVE_AT :]
    assert resumed["norms"] == sharded["norms"][worker.SAVE_AT :]
    assert_same_state(resumed["state"], result["gathered"], atol=0)


def test_tied_head_stays_tied(fsdp_run):
    result = fsdp_run[1]["causal_lm"]
    assert result["tied_after_sharding"] and result["tied_after_gather"]
    assert result["tied_after_resume"]


@pytest.mark.parametrize("case", CASES)
def test_gathered_weights_load_through_the_auto_api(fsdp_run, case):
    out, results = fsdp_run
    auto, plain_class = (
        (AutoModelForCausalLM, ScratchGPTForCausalLM)
        if case == "causal_lm"
        else (AutoModelForSequenceClassification, ScratchGPTForSequenceClassification)
    )
    # (In this process the library's registered classes answer; test_train.py loads an output
    # folder's own code in a fresh process.)
    loaded = auto.from_pretrained(out / case, trust_remote_code=True).eval()
    expected = plain_class(loaded.config).eval()
    expected.load_state_dict(results[case]["reference"]["state"])
    batch = worker.classifier_batches()[0]
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits, expected(**inputs).logits,
                                   atol=1e-5, rtol=1e-5)  # fmt: skip
    if case == "causal_lm":
        assert loaded.get_output_embeddings().weight is loaded.get_input_embeddings().weight


# ----------------------------------------------------------------------------- decisions


def test_lora_is_refused_under_fsdp_naming_the_flag(monkeypatch, capsys):
    assert unsupported_under_fsdp(train.parse_args([])) == ""
    assert unsupported_under_fsdp(train.parse_args(["--trainable", "all"])) == ""
    fsdp = SimpleNamespace(distributed_type=DistributedType.FSDP, num_processes=1)
    monkeypatch.setattr(train, "make_accelerator", lambda args: fsdp)
    assert finetune_main(["--trainable", "lora"]) == 2
    assert "--trainable lora is not supported with FSDP" in capsys.readouterr().err
