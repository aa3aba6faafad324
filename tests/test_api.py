"""The Python API and recipe files: ``finetune(FinetuneArguments(...))`` is the script, and a
run's ``recipe.yaml`` passed back as ``--config`` reproduces it."""

from __future__ import annotations

import contextlib
import io
import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scratchgpt import FinetuneArguments, finetune
from scratchgpt.data.arguments import build_prepare_parser as prepare_parser
from scratchgpt.training.arguments import parse_args

ROOT = Path(__file__).resolve().parents[1]


def run_script(name: str, argv: list[str]) -> str:
    """``python scripts/<name> argv`` in this process; returns what it printed."""
    out = io.StringIO()
    saved = sys.argv
    sys.argv = [name, *argv]
    try:
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
            runpy.run_path(str(ROOT / "scripts" / name), run_name="__main__")
    finally:
        sys.argv = saved
    assert exit_info.value.code == 0, out.getvalue()
    return out.getvalue()


def metrics_of(output_dir: Path) -> dict:
    return json.loads((output_dir / "metrics.json").read_text())


def assert_same_metrics(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for split in a:
        assert a[split]["confusion_matrix"] == b[split]["confusion_matrix"], split
        assert a[split]["accuracy"] == b[split]["accuracy"], split
        assert a[split]["loss"] == pytest.approx(b[split]["loss"], rel=1e-6), split


@pytest.fixture(scope="module")
def api_run(tmp_path_factory, model_dir, toy_file) -> tuple[Path, dict]:
    tmp = tmp_path_factory.mktemp("api")
    args = FinetuneArguments(
        model=str(model_dir),
        init="pretrained",
        data_file=str(toy_file),
        output_dir=tmp / "api",
        cache_dir=str(tmp / "cache"),
        no_tensorboard=True,
        epochs=2,
        eval_freq=2,
        eval_iter=2,
        lr=1e-3,
    )
    return tmp, finetune(args)


def test_python_api_equals_the_script(api_run, model_dir, toy_file):
    tmp, metrics = api_run
    assert_same_metrics(metrics, metrics_of(tmp / "api"))
    run_script(
        "finetune.py",
        [
            "--model", str(model_dir), "--init", "pretrained", "--data-file", str(toy_file),
            "--output-dir", str(tmp / "script"), "--cache-dir", str(tmp / "cache"),
            "--no-tensorboard", "--epochs", "2", "--eval-freq", "2", "--eval-iter", "2",
            "--lr", "1e-3",
        ],
    )  # fmt: skip
    assert_same_metrics(metrics, metrics_of(tmp / "script"))


def test_finetune_leaves_no_global_state_behind(api_run):
    from accelerate.state import AcceleratorState, GradientState, PartialState

    assert AcceleratorState._shared_state == PartialState._shared_state == {}
    assert GradientState._shared_state == {}
    # pyplot holds matplotlib's global backend: a notebook's must stay the notebook's.
    code = "import sys, scratchgpt.api; assert 'matplotlib.pyplot' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_recipe_of_a_run_reproduces_it(api_run):
    tmp, metrics = api_run
    recipe = yaml.safe_load((tmp / "api" / "recipe.yaml").read_text())
    assert recipe["epochs"] == 2 and recipe["lr"] == 1e-3 and recipe["run_dir"] is None
    run_script("finetune.py", ["--config", str(tmp / "api" / "recipe.yaml"),
                               "--output-dir", str(tmp / "again")])  # fmt: skip
    assert_same_metrics(metrics, metrics_of(tmp / "again"))
    again = yaml.safe_load((tmp / "again" / "recipe.yaml").read_text())
    assert again == {**recipe, "output_dir": str(tmp / "again")}


def test_flags_override_the_config_file(tmp_path):
    config = tmp_path / "recipe.yaml"
    config.write_text(
        "epochs: 3\nbatch_size: 4\nkeep_best: true\nsplit_fractions: [0.8, 0.1, 0.1]\n"
    )
    args = parse_args(["--config", str(config), "--epochs", "2"])
    assert (args.epochs, args.batch_size, args.keep_best) == (2, 4, True)
    assert args.split_fractions == [0.8, 0.1, 0.1]
    # A required flag may come from the file.
    config.write_text(f"output_dir: {tmp_path / 'data'}\nbalance: undersample\n")
    prepared, _ = prepare_parser().parse(["--config", str(config)])
    assert prepared.output_dir == str(tmp_path / "data") and prepared.balance == "undersample"


@pytest.mark.parametrize(
    "content, message",
    [
        ("epochs: 3\nbatchsize: 4\n", "unknown settings ['batchsize']"),
        ("batch_size: 0\n", "--batch-size must be >= 1, got 0"),
        ("- epochs\n", "expected a mapping"),
        ("trainable: lorax\n", "--trainable must be one of last_layer, last_block"),
    ],
)
def test_bad_config_files_are_refused_by_name(tmp_path, capsys, content, message):
    config = tmp_path / "recipe.yaml"
    config.write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--config", str(config)])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_validation_names_the_flag_and_value():
    with pytest.raises(ValueError, match=r"--drop-rate must be in \[0, 1\), got 1.5"):
        FinetuneArguments(drop_rate=1.5)
    with pytest.raises(ValueError, match="--pooling must be one of last, mean, got 'max'"):
        FinetuneArguments(pooling="max")
    with pytest.raises(ValueError, match="--mixed-precision must be one of auto, no, bf16, fp16"):
        FinetuneArguments(mixed_precision="fp8")
    # null in a recipe written before "auto" existed means the default
    assert FinetuneArguments(mixed_precision=None).mixed_precision == "auto"
    from scratchgpt import ConvertArguments

    with pytest.raises(ValueError, match="--from must be one of openai, hf, book, got 'tf'"):
        ConvertArguments(output_dir="x", source_format="tf")
    with pytest.raises(ValueError, match="--data-file and --dataset-dir are alternatives"):
        FinetuneArguments(data_file="a", dataset_dir="b")
    args = FinetuneArguments(output_dir="runs/x")  # strings become paths, run dir derived
    assert args.output_dir == Path("runs/x") and args.run_dir == Path("runs/x.run")


@pytest.mark.parametrize("recipe", sorted((ROOT / "configs" / "finetune").glob("*.yaml")))
def test_shipped_recipes_parse(recipe):
    args = parse_args(["--config", str(recipe)])
    assert args.output_dir != Path("outputs/sms-spam")  # each recipe writes its own folder


def test_api_is_importable_from_the_package():
    import scratchgpt

    functions = ("finetune", "prepare_data", "evaluate", "classify", "generate", "convert")
    for name in (*functions, "push_to_hub", "push_space", "build_app"):
        assert callable(getattr(scratchgpt, name))
    parts = ("Finetune", "PrepareData", "Data", "Evaluate", "Classify", "Generate", "Convert")
    for name in (*parts, "Push", "Space", "App"):
        assert hasattr(scratchgpt, f"{name}Arguments")
    # One list of names: scratchgpt.api exports exactly scratchgpt.api_names.API_NAMES.
    from types import ModuleType

    from scratchgpt import api

    public = {n for n, v in vars(api).items() if n[0] != "_" and not isinstance(v, ModuleType)}
    assert public - {"API_NAMES"} == set(api.__all__) == set(scratchgpt.API_NAMES)
    assert all(getattr(scratchgpt, n) is getattr(api, n) for n in scratchgpt.API_NAMES)


def test_prepare_and_evaluate_from_python_score_the_run(api_run, model_dir, toy_file):
    from scratchgpt import EvaluateArguments, PrepareDataArguments, evaluate, prepare_data

    tmp, metrics = api_run
    data_dir = tmp / "prepared"
    # The trainer's data flags (here the defaults) give the trainer's test split.
    prepared = prepare_data(
        PrepareDataArguments(data_file=str(toy_file), model=str(model_dir), output_dir=data_dir)
    )
    assert prepared.summary.rows["test"] == {"ham": 8, "spam": 8}
    scored = evaluate(
        EvaluateArguments(model=str(tmp / "api"), dataset_dir=str(data_dir), output_dir=tmp / "ev")
    )
    assert scored["confusion_matrix"] == metrics["test"]["confusion_matrix"]
    assert scored["accuracy"] == metrics["test"]["accuracy"]
    assert (tmp / "ev" / "metrics.json").is_file()


def test_classify_and_generate_from_python_equal_the_scripts(
    tiny_classifier_dir, tiny_lm_dir, capsys
):
    from scratchgpt import ClassifyArguments, GenerateArguments, classify, generate
    from scratchgpt.cli import classify_main, generate_main

    rows = classify(ClassifyArguments(model=str(tiny_classifier_dir)), ["hi", "WIN now"])
    assert (
        classify_main(["--model", str(tiny_classifier_dir), "--format", "jsonl", "hi", "WIN now"])
        == 0
    )
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["label"], r["score"]) for r in rows] == [(r["label"], r["score"]) for r in printed]

    texts = generate(GenerateArguments(model=str(tiny_lm_dir), max_new_tokens=3), "Hi")
    assert generate_main(["--model", str(tiny_lm_dir), "--max-new-tokens", "3", "Hi"]) == 0
    assert capsys.readouterr().out == f"{texts[0]}\n"


def test_epoch_validation_is_the_whole_split_and_matches_evaluate(api_run, toy_file):
    """The per-epoch validation numbers (step log, plots, console) cover the whole split, so the
    last epoch's equal the final metrics and ``evaluate.py`` on the saved folder."""
    from scratchgpt import EvaluateArguments, evaluate

    tmp, metrics = api_run
    records = [json.loads(line) for line in (tmp / "api" / "steps.jsonl").read_text().splitlines()]
    last = [r for r in records if r.get("epoch_end")][-1]
    assert last["val_examples"] == metrics["validation"]["num_examples"]
    assert last["val_accuracy"] == metrics["validation"]["accuracy"]
    assert last["val_loss"] == pytest.approx(metrics["validation"]["loss"], rel=1e-5)
    scored = evaluate(
        EvaluateArguments(
            model=str(tmp / "api"),
            data_file=str(toy_file),
            cache_dir=str(tmp / "cache"),
            split="validation",
            output_dir=tmp / "eval-validation",
        )
    )
    assert scored["accuracy"] == last["val_accuracy"]
    assert scored["confusion_matrix"] == metrics["validation"]["confusion_matrix"]
