"""Fine-tuning (``scratchgpt.training``) on tiny models: learning, cache exactness, resume, outputs.

Every run goes through ``train.main`` with real flags, the real data pipeline and a tiny
3-block model over GPT-2's vocabulary, so what is tested is what users run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from scratchgpt.cli import finetune_main
from scratchgpt.run_record import OLD_COPIES, RunRecord
from scratchgpt.training import loop as train
from scratchgpt.training.prefix_cache import cache_blocker, frozen_prefix_length
from scratchgpt_modeling.modeling_scratchgpt import ScratchGPTForSequenceClassification
from tests.helpers import flags, free_port, step_log, tiny_config, weights

# Accelerate keeps process-wide singletons: every test here leaves them clean.
pytestmark = pytest.mark.usefixtures("fresh_accelerate_state")


def assert_same_weights(a: Path, b: Path, atol: float) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], atol=atol, rtol=0, msg=key)


def assert_same_weights_but_key_bias(a: Path, b: Path, atol: float) -> None:
    """Equal weights, except the attention key bias, whose gradient is zero in exact arithmetic
    (softmax ignores a shift shared by all scores of a query): Adam divides its rounding noise
    by its own tiny magnitude, so that slice drifts at lr scale on any two float paths."""
    wa, wb = weights(a), weights(b)
    for key in [k for k in wa if k.endswith("att.qkv.bias")]:
        emb = wa[key].shape[0] // 3
        for w in (wa, wb):
            w[key] = torch.cat([w[key][:emb], w[key][2 * emb :]])  # drop the k slice
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], atol=atol, rtol=0, msg=key)


def without_timings(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "epoch_seconds"} for r in records]


def losses(records: list[dict]) -> list[float]:
    return [r[k] for r in records for k in ("train_loss", "val_loss")]


# ----------------------------------------------------------------------------- learning + outputs


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory, model_dir, toy_file) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("toy_run")
    args = flags(tmp, model_dir, toy_file, "out", "--trainable", "all", "--epochs", "4")
    args.remove("--no-tensorboard")
    metrics = train.main(args)
    train.reset_accelerate_state()
    return tmp / "out", metrics


def test_loss_decreases_on_learnable_task(toy_run):
    output_dir, metrics = toy_run
    evals = [r for r in step_log(output_dir) if "val_loss" in r and "epoch_end" not in r]
    assert evals[-1]["train_loss"] < 0.5 * evals[0]["train_loss"]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"]
    assert metrics["test"]["accuracy"] >= 0.9
    assert metrics["test"]["num_examples"] == 16


def test_output_folder_is_complete(toy_run):
    output_dir, metrics = toy_run
    for name in ("config.json", "model.safetensors", "modeling_scratchgpt.py", "vocab.json",
                 "metrics.json", "training_args.json", "recipe.yaml", "steps.jsonl", "README.md",
                 "loss-plot.png", "loss-plot.pdf", "accuracy-plot.png", "accuracy-plot.pdf",
                 "confusion_matrix.png"):  # fmt: skip
        assert (output_dir / name).is_file(), name
    assert list(output_dir.glob("events.out.tfevents*")), "TensorBoard events missing"
    saved = json.loads((output_dir / "metrics.json").read_text())
    assert saved["test"]["accuracy"] == metrics["test"]["accuracy"]
    assert set(saved) >= {"train", "validation", "test"}
    config = json.loads((output_dir / "config.json").read_text())
    assert config["id2label"] == {"0": "ham", "1": "spam"}
    # training_args.json is the run's record: every fact once, under one name.
    written = json.loads((output_dir / "training_args.json").read_text())
    assert not set(written) & set(OLD_COPIES)
    record = RunRecord.from_json(written)
    assert record.to_json() == written
    assert (record.model_name, record.label_names) == ("out", ["ham", "spam"])
    assert record.get("epochs") == 4 and record.num_train_examples == 56
    assert record.get("mixed_precision") == "no"  # the flag's None resolved by accelerate
    epochs = [r for r in step_log(output_dir) if r.get("epoch_end")]
    assert [r["epoch"] for r in epochs] == [1, 2, 3, 4]
    assert not (output_dir.parent / "out.run").exists()  # the run folder goes after success


def test_output_loads_through_auto_api_in_fresh_process(toy_run):
    output_dir, _ = toy_run
    text = "win cash prize now"
    code = f"""
import json, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
folder = {str(output_dir)!r}
model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)
tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
with torch.no_grad():
    logits = model(**tok({text!r}, return_tensors="pt")).logits[0].tolist()
print(json.dumps({{"cls": type(model).__module__, "logits": logits}}))
"""
    # Run from an empty folder so the library is not importable from the working tree.
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=output_dir.parent, check=True, timeout=300,
                            stdin=subprocess.DEVNULL)  # fmt: skip
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["cls"].startswith("transformers_modules")
    model = ScratchGPTForSequenceClassification.from_pretrained(output_dir).eval()
    ids = torch.tensor([model_token_ids(output_dir, text)])
    with torch.no_grad():
        expected = model(input_ids=ids).logits[0]
    torch.testing.assert_close(torch.tensor(loaded["logits"]), expected, atol=1e-5, rtol=0)


def model_token_ids(folder: Path, text: str) -> list[int]:
    from scratchgpt.tokenizer import load_tiktoken

    return load_tiktoken(folder).encode(text)


# ----------------------------------------------------------------------------- prefix cache


@pytest.mark.parametrize(
    ("trainable", "pooling", "frozen"), [("last_block", "last", 2), ("last_layer", "mean", 3)]
)
def test_prefix_cache_gives_the_uncached_losses_and_weights(
    tmp_path, model_dir, toy_file, trainable, pooling, frozen
):
    common = ("--trainable", trainable, "--pooling", pooling, "--epochs", "2")
    train.main(flags(tmp_path, model_dir, toy_file, "cached", *common))
    train.reset_accelerate_state()
    train.main(flags(tmp_path, model_dir, toy_file, "plain", *common, "--prefix-cache", "off"))
    cached, plain = tmp_path / "cached", tmp_path / "plain"
    note = json.loads((cached / "training_args.json").read_text())["prefix_cache"]
    assert note.startswith(f"on: blocks 0..{frozen - 1} ")
    assert json.loads((plain / "training_args.json").read_text())["prefix_cache"].startswith("off")
    torch.testing.assert_close(losses(step_log(cached)), losses(step_log(plain)), atol=1e-5,
                               rtol=0)  # fmt: skip
    assert_same_weights_but_key_bias(cached, plain, atol=1e-6)
    # Not vacuous: the trained head moved away from its initial weights.
    initial = load_file(model_dir / "model.safetensors")["classifier.weight"]
    assert (weights(cached)["classifier.weight"] - initial).abs().max() > 1e-3


def tiny_model(**overrides) -> ScratchGPTForSequenceClassification:
    return ScratchGPTForSequenceClassification(tiny_config(n_layers=3, **overrides))


@pytest.mark.parametrize(
    ("trainable", "frozen"),
    [("last_layer", 3), ("last_block", 2), ("last_two_blocks", 1), ("all", 0)],
)
def test_trainable_modes_freeze_the_book_layers(trainable, frozen):
    model = train.configure_trainable(tiny_model(), train.parse_args(["--trainable", trainable]))
    assert frozen_prefix_length(model) == frozen
    learns = {n.split(".")[0] if n.startswith("classifier") else n
              for n, p in model.named_parameters() if p.requires_grad}  # fmt: skip
    assert "classifier" in learns
    assert ("gpt.final_norm.weight" in learns) == (trainable != "last_layer")
    assert cache_blocker(model, "NO", False) == (
        "" if frozen else "the embeddings or the first block are trainable"
    )


def test_prefix_cache_switches_off_when_it_cannot_apply():
    def blocker(model, trainable, kind="NO"):
        model = train.configure_trainable(model, train.parse_args(["--trainable", trainable]))
        return cache_blocker(model, kind, False)

    assert blocker(tiny_model(), "last_block") == ""
    assert "dropout" in blocker(tiny_model(drop_rate=0.1), "last_block")
    assert "LoRA" in blocker(tiny_model(), "lora")
    assert "FSDP" in blocker(tiny_model(), "last_block", "FSDP")
    assert "trainable" in blocker(tiny_model(), "all")


def test_lora_trains_only_adapters_and_head():
    model = train.configure_trainable(tiny_model(), train.parse_args(["--trainable", "lora"]))
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n or "classifier" in n for n in names)
    assert any("att.qkv.lora_A" in n for n in names)


def test_bad_flags_are_refused(capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--batch-size", "0"])
    assert "--batch-size must be >= 1, got 0" in capsys.readouterr().err


# ----------------------------------------------------------------------------- resume


class SimulatedCrash(RuntimeError):
    pass


BATCH_SLEEP_S = 0.5


def test_resume_equals_uninterrupted_run(tmp_path, model_dir, toy_file, monkeypatch):
    # Dropout (so RNG state matters; it also turns the cache off), accumulation, warmup and
    # a decaying schedule: everything a resume has to restore. The checkpoints hold none of
    # the frozen weights (embeddings, block 0): the resumed run rebuilds them.
    common = ("--trainable", "last_two_blocks", "--drop-rate", "0.1", "--epochs", "2",
              "--gradient-accumulation-steps", "2", "--lr-schedule", "linear",
              "--warmup-steps", "2", "--save-steps", "3", "--max-grad-norm", "1.0")  # fmt: skip
    train.main(flags(tmp_path, model_dir, toy_file, "whole", *common))
    train.reset_accelerate_state()

    real_after_step = train.after_step

    def crash_at_step_4(run, epoch):
        real_after_step(run, epoch)
        if run.state.global_step == 4:  # mid-epoch: 7 batches = 4 steps/epoch; saved at 3
            raise SimulatedCrash

    real_train_step = train.train_step

    def slow_train_step(run, batch):  # the crashed session alone takes seconds
        time.sleep(BATCH_SLEEP_S)
        return real_train_step(run, batch)

    monkeypatch.setattr(train, "after_step", crash_at_step_4)
    monkeypatch.setattr(train, "train_step", slow_train_step)
    with pytest.raises(SimulatedCrash):
        train.main(flags(tmp_path, model_dir, toy_file, "split", *common))
    monkeypatch.setattr(train, "train_step", real_train_step)
    assert not (tmp_path / "split").exists(), "a crashed run must not leave an output folder"
    (checkpoint,) = (tmp_path / "split.run" / "checkpoints").iterdir()
    saved = load_file(checkpoint / "model.safetensors")
    assert not [k for k in saved if "tok_emb" in k or "pos_emb" in k or ".blocks.0." in k]
    monkeypatch.setattr(train, "after_step", real_after_step)
    train.reset_accelerate_state()

    train.main(flags(tmp_path, model_dir, toy_file, "split", *common,
                     "--resume-from-checkpoint", "latest"))  # fmt: skip
    assert without_timings(step_log(tmp_path / "split")) == without_timings(
        step_log(tmp_path / "whole")
    )
    assert_same_weights(tmp_path / "split", tmp_path / "whole", atol=0)
    # Training time adds up across the sessions: the crashed one's counts up to its checkpoint
    # (3 steps of 2 batches), though the resumed session alone is far shorter.
    seconds = json.loads((tmp_path / "split" / "training_args.json").read_text())["train_seconds"]
    assert seconds >= 3 * 2 * BATCH_SLEEP_S


def test_an_interrupted_run_asks_to_resume_or_overwrite(
    tmp_path, model_dir, toy_file, monkeypatch, capsys
):
    args = flags(tmp_path, model_dir, toy_file, "out", "--max-steps", "3", "--save-steps", "2")
    real_after_step = train.after_step

    def crash_at_step_3(run, epoch):
        real_after_step(run, epoch)
        if run.state.global_step == 3:
            raise SimulatedCrash

    monkeypatch.setattr(train, "after_step", crash_at_step_3)
    with pytest.raises(SimulatedCrash):
        train.main(args)
    monkeypatch.setattr(train, "after_step", real_after_step)
    train.reset_accelerate_state()
    capsys.readouterr()  # the crashed run's progress bars
    assert finetune_main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds checkpoints of an interrupted run" in err
    assert "--resume-from-checkpoint latest" in err and "--overwrite" in err
    train.reset_accelerate_state()
    train.main([*args, "--overwrite"])
    assert len(step_log(tmp_path / "out")) == 2  # the new run's records only (steps 1 and 3)


# ----------------------------------------------------------------------------- processes


def test_two_processes_match_one_with_the_same_global_batch(tmp_path, model_dir, toy_file):
    # --batch-size is the global batch: two gloo processes take 2 examples each of the same
    # 4-example batches one process takes whole, so the weights must agree.
    common = ("--batch-size", "4", "--epochs", "1")
    train.main(flags(tmp_path, model_dir, toy_file, "one", *common))
    script = str(Path(__file__).resolve().parents[1] / "scripts" / "finetune.py")
    two = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
           "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "--main_process_port", str(free_port()),
           script, *flags(tmp_path, model_dir, toy_file, "two", *common)]  # fmt: skip
    subprocess.run(two, check=True, capture_output=True, timeout=600)
    record = json.loads((tmp_path / "two" / "training_args.json").read_text())
    assert record["num_processes"] == 2 and record["prefix_cache"].startswith("on")
    assert step_log(tmp_path / "two")[-1]["examples_seen"] == 56
    torch.testing.assert_close(losses(step_log(tmp_path / "one")),
                               losses(step_log(tmp_path / "two")), atol=1e-5, rtol=0)  # fmt: skip
    assert_same_weights_but_key_bias(tmp_path / "one", tmp_path / "two", atol=1e-6)


# ----------------------------------------------------------------------------- options


def test_lora_keep_best_and_cosine_save_a_plain_model(tmp_path, model_dir, toy_file):
    args = flags(tmp_path, model_dir, toy_file, "lora", "--trainable", "lora", "--epochs", "2",
                 "--keep-best", "--lr-schedule", "cosine", "--warmup-steps", "2",
                 "--keep-checkpoints")  # fmt: skip
    train.main(args)
    output_dir = tmp_path / "lora"
    record = json.loads((output_dir / "training_args.json").read_text())
    assert record["prefix_cache"].startswith("off: LoRA")
    assert record["best"]["epoch"] in (1, 2)
    assert Path(record["best"]["checkpoint"]).is_dir()  # kept for the final weights
    kept = {p.name for p in (tmp_path / "lora.run" / "checkpoints").iterdir()}
    assert kept == {"step_0000014", Path(record["best"]["checkpoint"]).name}  # newest + best
    saved = weights(output_dir)
    assert not [k for k in saved if "lora" in k or "base_model" in k]  # adapters merged
    assert saved.keys() == load_file(model_dir / "model.safetensors").keys()
    # Merged adapters changed the attention weights; the embeddings were never trained.
    initial = load_file(model_dir / "model.safetensors")
    assert not torch.equal(saved["gpt.blocks.0.att.qkv.weight"],
                           initial["gpt.blocks.0.att.qkv.weight"])  # fmt: skip
    assert torch.equal(saved["gpt.tok_emb.weight"], initial["gpt.tok_emb.weight"])


def test_gradient_checkpointing_gives_the_same_training(tmp_path, model_dir, toy_file):
    common = ("--trainable", "all", "--max-steps", "3")
    train.main(flags(tmp_path, model_dir, toy_file, "plain", *common))
    train.reset_accelerate_state()
    train.main(flags(tmp_path, model_dir, toy_file, "ckpt", *common, "--gradient-checkpointing"))
    torch.testing.assert_close(
        losses(step_log(tmp_path / "plain")), losses(step_log(tmp_path / "ckpt")), atol=1e-6, rtol=0
    )
    assert_same_weights_but_key_bias(tmp_path / "plain", tmp_path / "ckpt", atol=1e-6)


def test_offline_pretrained_points_to_init_random(tmp_path, toy_file, monkeypatch, capsys):
    from scratchgpt.download import DownloadError
    from scratchgpt.weights import convert

    def offline(*args, **kwargs):  # the network boundary, as an offline machine meets it
        raise DownloadError("cannot reach openaipublic.blob.core.windows.net")

    monkeypatch.setenv("SCRATCHGPT_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(convert, "download_openai_gpt2", offline)
    argv = ["--model", "gpt2-small", "--data-file", str(toy_file),
            "--output-dir", str(tmp_path / "out")]  # fmt: skip
    assert finetune_main(argv) == 2
    err = capsys.readouterr().err
    assert "--init random" in err and "cannot reach" in err
    assert not (tmp_path / "out").exists()


def test_every_long_stage_shows_progress(tmp_path, model_dir, toy_file, capsys):
    """The prefix cache, training and final evaluation each draw a bar with counts (the cache
    stage was silent for minutes on the real data)."""
    train.main(flags(tmp_path, model_dir, toy_file, "progress", "--trainable", "last_block"))
    captured = capsys.readouterr()
    err = captured.err
    lines = err.replace("\r", "\n").splitlines()
    cache = [line for line in lines if line.startswith("prefix cache (blocks 0..1)")]
    assert cache and "tok" in cache[-1] and "100%" in cache[-1], cache[-1:]
    steps = [line for line in lines if line.startswith("fine-tuning") and "100%" in line]
    assert steps and "loss=" in steps[-1] and "ex_s=" in steps[-1], steps[-1:]
    assert any(line.startswith("final evaluation") and "100%" in line for line in lines)
    assert "validation (" in captured.out  # the epoch line names the whole split's size
