"""Model card from metrics.json/training_args.json, offline dry run, push failing cleanly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from scratchgpt.cli import push_main
from scratchgpt.hub.card import CardError, card_problems, render_model_card, write_model_card
from scratchgpt.hub.push import (
    HubPushError,
    check_folder,
    push_folder,
    upload_file_list,
)
from scratchgpt.metrics.report import compute_classification_metrics, plot_confusion_matrix
from scratchgpt.paths import current_umask
from scratchgpt.run_record import RunRecord
from tests.helpers import run_script_against_a_dead_hub

# What the trainer writes: its own CLI args (finetune.py's names) plus facts.
TRAINING_ARGS = {
    "model": "gpt2-small",
    "init": "pretrained",
    "data_file": "/data/sms_spam_collection/SMSSpamCollection",
    "dataset": None,
    "keep_duplicates": False,
    "balance": "undersample",
    "trainable": "last_block",
    "epochs": 5,
    "batch_size": 8,
    "lr": 5e-05,
    "weight_decay": 0.1,
    "seed": 123,
}


def split_metrics(predictions: list[int], references: list[int]) -> dict:
    return compute_classification_metrics(predictions, references, ["ham", "spam"])


@pytest.fixture
def output_dir(tiny_classifier_dir, tmp_path) -> Path:
    """A copy of the tiny classifier with the files a finished training run adds."""
    folder = Path(shutil.copytree(tiny_classifier_dir, tmp_path / "sms-spam"))
    metrics = {
        "train": split_metrics([0, 1, 1, 0], [0, 1, 1, 0]),
        "validation": split_metrics([0, 1, 0, 0, 1], [0, 1, 1, 0, 1]),
        "test": split_metrics([0, 0, 1, 1, 0, 1, 0], [0, 0, 1, 0, 0, 1, 1]),
        "train_seconds": 12.5,
    }
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "training_args.json").write_text(json.dumps(TRAINING_ARGS))
    plot_confusion_matrix(metrics["test"]["confusion_matrix"], ["ham", "spam"], folder / "cm.png")
    return folder


def test_card_metadata_parses_and_carries_metrics_json_numbers(output_dir):
    path = write_model_card(output_dir, repo_id="me/gpt2-sms-spam")
    assert path.stat().st_mode & 0o777 == 0o666 & ~current_umask()  # not mkstemp's 0600
    card = ModelCard.load(path)
    data = card.data
    assert data.pipeline_tag == "text-classification"
    assert data.library_name == "transformers"
    assert data.license == "apache-2.0"
    assert data.datasets == ["ucirvine/sms_spam"]
    assert data.base_model == "openai-community/gpt2"
    assert data.language == "en"
    metrics = json.loads((output_dir / "metrics.json").read_text())
    found = {(r.dataset_split, r.metric_type): r.metric_value for r in data.eval_results}
    for split in ("validation", "test"):
        assert found[(split, "accuracy")] == pytest.approx(metrics[split]["accuracy"], abs=1e-6)
        assert found[(split, "f1")] == pytest.approx(metrics[split]["f1_macro"], abs=1e-6)
        assert found[(split, "recall")] == pytest.approx(metrics[split]["recall_macro"], abs=1e-6)
    assert found[("test", "accuracy")] == pytest.approx(5 / 7, abs=1e-6)
    body = card.text
    assert "| test | 7 | 0.7143 |" in body  # results table row
    assert "| True | undersample |" in body  # dedupe = not keep_duplicates, balance
    assert "Almeida" in body and "CC BY 4.0" in body
    assert "![Cm](cm.png)" in body
    assert (
        'pipeline("text-classification", model="me/gpt2-sms-spam", trust_remote_code=True)' in body
    )
    assert "| learning rate (AdamW) | `5e-05` |" in body
    assert card_problems(path.read_text()) == []


def test_random_init_card_has_no_base_model(output_dir):
    args = {**TRAINING_ARGS, "init": "random"}
    (output_dir / "training_args.json").write_text(json.dumps(args))
    card = render_model_card(output_dir)
    assert card.data.base_model is None
    assert "Trained from random initialisation" in card.text
    assert not (output_dir / "README.md").exists()  # render only, nothing written
    # Its limitations and intended use are those of a model with no pre-training.
    assert "WebText" not in card.text
    assert "everything the model knows about language comes from" in card.text
    assert "no pre-training" in card.text


def test_pretrained_card_names_webtext_biases(output_dir):
    card = render_model_card(output_dir)
    assert "WebText" in card.text
    assert "everything the model knows about language comes from" not in card.text


def test_card_records_no_local_paths(output_dir, tmp_path):
    local = {"data_file": "/home/me/data/SMSSpamCollection", "output_dir": str(tmp_path / "o"),
             "run_dir": "outputs/sms-spam.run", "cache_dir": "../cache", "model": str(output_dir),
             "dataset": "ucirvine/sms_spam",
             "data_summary": {"source": "/home/me/data/SMSSpamCollection", "rows_read": 9},
             "best": {"epoch": 2, "checkpoint": "/home/me/run/checkpoints/step_14"}}  # fmt: skip
    args = {**TRAINING_ARGS, **local}
    (output_dir / "training_args.json").write_text(json.dumps(args))
    text = render_model_card(output_dir).text
    for value in ("/home/me", str(tmp_path), "../cache", str(output_dir), "outputs/"):
        assert value not in text, value
    assert '"data_file": "SMSSpamCollection"' in text
    assert '"dataset": "ucirvine/sms_spam"' in text  # a Hub id is not a local path


def test_card_inputs_errors_name_the_file(output_dir):
    (output_dir / "metrics.json").write_text(json.dumps({"train": split_metrics([0], [0])}))
    with pytest.raises(CardError, match=r"metrics.json: needs a 'validation' or 'test' entry"):
        write_model_card(output_dir)
    (output_dir / "metrics.json").write_text("{not json")
    with pytest.raises(CardError, match=r"metrics.json:1: invalid JSON"):
        write_model_card(output_dir)
    (output_dir / "training_args.json").unlink()
    (output_dir / "metrics.json").write_text(json.dumps({"test": split_metrics([0], [0])}))
    with pytest.raises(CardError, match=r"training_args.json not found"):
        write_model_card(output_dir)
    assert not (output_dir / "README.md").exists()


def test_run_record_has_one_name_per_fact():
    record = RunRecord(settings={"epochs": 3, "lr": 1e-3}, model_name="m", seconds={"total": 1.0})
    assert RunRecord.from_json(record.to_json()) == record
    assert record.get("lr") == 1e-3 and record.get("model_name") == "m"
    assert record.get("absent", "default") == "default"
    with pytest.raises(ValueError, match=r"\['model_name'\] are both a setting and a fact"):
        RunRecord(settings={"model_name": "x"})


def test_card_reads_a_folder_written_before_the_run_record(output_dir):
    """Earlier trainers also wrote copies of some flags under other names: the card reads such
    a folder as before and shows each setting once."""
    new = render_model_card(output_dir).text
    copies = {"num_epochs": 5, "learning_rate": 5e-05, "lr_scheduler": "constant",
              "lora_rank": None, "dedupe": True, "base_model": "gpt2-small"}  # fmt: skip
    old = {**TRAINING_ARGS, **copies}
    (output_dir / "training_args.json").write_text(json.dumps(old))
    assert render_model_card(output_dir).text == new
    assert '"learning_rate"' not in new and '"lr": 5e-05' in new


def test_card_problems_catch_bad_metadata(output_dir):
    text = str(render_model_card(output_dir))
    broken = text.replace("pipeline_tag: text-classification", "pipeline_tag: text-generation")
    broken = broken.replace("license: apache-2.0", "license: Apache 2.0")
    problems = card_problems(broken)
    assert any("pipeline_tag is 'text-generation'" in p for p in problems)
    assert any("license 'Apache 2.0'" in p for p in problems)
    no_index = text[: text.index("model-index:")] + "---\n\n# body\n"
    assert any("model-index has no results" in p for p in card_problems(no_index))


def test_dry_run_lists_files_and_loads_in_a_fresh_process(output_dir, capsys):
    before = sorted(p.name for p in output_dir.iterdir())
    code = push_main(["--model", str(output_dir), "--repo-id", "me/gpt2-sms-spam", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0, out
    for name in [*before, "README.md"]:
        size = (output_dir / name).stat().st_size if name in before else None
        line = next(line for line in out.splitlines() if line.strip().startswith(name + " "))
        if size is not None and size < 1024:
            assert line.split()[1:3] == [str(size), "B"]
    assert "(generated from metrics.json)" in out  # README.md would be rendered at push time
    # trust_remote_code loaded the folder's own copy of the code, not the installed library.
    assert "loads with trust_remote_code as transformers_modules." in out
    assert "dry run: nothing uploaded" in out
    assert sorted(p.name for p in output_dir.iterdir()) == before  # dry run changes nothing


def test_training_logs_are_uploaded_only_when_asked(output_dir, capsys):
    logs = ["steps.jsonl", "events.out.tfevents.1.host.1.0", "logs/finetune/events.out.tfevents.2"]
    for name in logs:
        (output_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (output_dir / name).write_text("log")
    names = [name for name, _ in upload_file_list(output_dir)]
    assert not set(logs) & set(names)
    assert {"config.json", "model.safetensors", "metrics.json", "cm.png"} <= set(names)
    assert set(logs) <= {name for name, _ in upload_file_list(output_dir, include_logs=True)}
    argv = ["--model", str(output_dir), "--repo-id", "me/x", "--dry-run", "--no-load-check"]
    assert push_main(argv) == 0
    assert "steps.jsonl" not in capsys.readouterr().out
    assert push_main([*argv, "--include-logs"]) == 0
    assert "steps.jsonl" in capsys.readouterr().out


def test_dry_run_reports_missing_model_files(output_dir, capsys):
    (output_dir / "modeling_scratchgpt.py").unlink()
    code = push_main(["--model", str(output_dir), "--repo-id", "me/x", "--dry-run"])
    assert code == 2
    assert "lacks model files: modeling_scratchgpt.py" in capsys.readouterr().out


def test_push_from_python_checks_first(output_dir):
    from scratchgpt import PushArguments, push_to_hub

    dry = PushArguments(model=output_dir, repo_id="me/x", dry_run=True, no_load_check=True)
    assert push_to_hub(dry) == ""  # checked, nothing uploaded
    (output_dir / "modeling_scratchgpt.py").unlink()
    with pytest.raises(ValueError, match="lacks model files: modeling_scratchgpt.py"):
        push_to_hub(dry)


def test_push_refuses_without_token_or_when_offline(output_dir, monkeypatch):
    assert check_folder(output_dir, load=False).ok
    monkeypatch.setattr("scratchgpt.hub.push.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(HubPushError, match="HF_HUB_OFFLINE is set"):
        push_folder(output_dir, "me/x")
    monkeypatch.setattr("scratchgpt.hub.push.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("scratchgpt.hub.push.get_token", lambda: None)
    with pytest.raises(HubPushError, match="no Hugging Face token"):
        push_folder(output_dir, "me/x")


def test_real_push_without_network_fails_cleanly(output_dir, tmp_path):
    args = ["--model", str(output_dir), "--repo-id", "me/x", "--no-load-check"]
    proc = run_script_against_a_dead_hub("push_to_hub.py", args, tmp_path / "hf_home")
    assert proc.returncode == 1, proc.stderr
    assert "could not create the repo on http://127.0.0.1:" in proc.stderr
    assert "No files were committed" in proc.stderr
    assert "Traceback" not in proc.stderr
