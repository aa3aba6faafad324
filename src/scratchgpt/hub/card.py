"""The Hub model card (``README.md``) of a fine-tuned output folder, rendered from its results.

``write_model_card(output_dir)`` fills the template ``model_card.md`` (repository root) with two
files the trainer writes into ``output_dir``, plus the folder's ``config.json`` (label names,
context length) and any PNG plots in ``output_dir`` or ``output_dir/plots``.

``metrics.json`` — one entry per split, each the dict returned by
``scratchgpt.metrics.report.compute_classification_metrics``::

    {"train": {...}, "validation": {...}, "test": {...}}

Each split needs ``accuracy``, ``precision_macro``, ``recall_macro``, ``f1_macro``,
``per_class``, ``confusion_matrix``, ``label_names``, ``num_examples``; extra keys (``loss``)
are allowed. Top-level entries that are not such dicts (a wall time, say) are ignored. At least
``validation`` or ``test`` must be present: they become the ``model-index`` results.

``training_args.json`` — the run's record (``scratchgpt.run_record.RunRecord``): its settings
under ``finetune.py``'s flag names and the facts it measured, each under one name (all are
shown in the card). The card reads:

- dataset: ``dataset`` (Hub id), else ``data_summary.source``, else ``data_file``; the SMS
  Spam Collection file (``SMSSpamCollection``) or ``ucirvine/sms_spam`` get their citation;
- ``keep_duplicates`` (duplicates removed unless it is true); ``balance``
  (``"none"``/``"undersample"``);
- ``num_train_examples`` (int), else ``metrics.json``'s ``train.num_examples``;
- ``model`` (a preset such as ``gpt2-small``, mapped to its Hub id, or a Hub id); with
  ``init == "random"`` the card says "random initialisation" and has no ``base_model`` metadata;
- recipe table, when present: the settings of ``RECIPE_ROWS``;
- optional, added by hand: ``license`` (default ``apache-2.0``), ``language`` (default ``en``),
  ``intended_use``, ``context_length``; ``model_name`` defaults to the folder's name.

The card's YAML metadata is checked offline by ``validate_card`` (``ModelCard.validate`` needs
the network).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from scratchgpt.files import UsageError, atomic_write
from scratchgpt.paths import REPO_ROOT
from scratchgpt.run_record import RUN_RECORD_FILE, RunRecord

METRICS_FILE = "metrics.json"
CARD_FILE = "README.md"
TEMPLATE_PATH = REPO_ROOT / "model_card.md"

SPLIT_KEYS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "num_examples")
RESULT_SPLITS = ("validation", "test")
PRESET_HUB_IDS = {
    "gpt2-small": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
    "gpt2-xl": "openai-community/gpt2-xl",
}
SMS_DATASET_ID = "ucirvine/sms_spam"
SMS_NAMES = {"SMSSpamCollection", "sms_spam", SMS_DATASET_ID, "sms+spam+collection.zip"}
SMS_DESCRIPTION = (
    "The [SMS Spam Collection](https://archive.ics.uci.edu/dataset/228/sms+spam+collection) "
    "(UCI data set 228) by Tiago A. Almeida and José María Gómez Hidalgo: 5,574 English SMS "
    "messages labelled `ham` (4,827) or `spam` (747), released under "
    "[CC BY 4.0](https://creativecommons.org/licenses/by/4.0/). Please cite:"
)
SMS_CITATION = """@inproceedings{almeida2011sms,
  author    = {Almeida, Tiago A. and G{\\'o}mez Hidalgo, Jos{\\'e} Mar{\\'i}a and Yamakami, Akebo},
  title     = {Contributions to the Study of {SMS} Spam Filtering: New Collection and Results},
  booktitle = {Proceedings of the 11th ACM Symposium on Document Engineering (DocEng '11)},
  pages     = {259--262},
  year      = {2011},
  doi       = {10.1145/2034691.2034742}
}"""
# The recipe table: label -> the setting it shows.
RECIPE_ROWS = {
    "initialisation": "init",
    "trainable parameters": "trainable",
    "pooling": "pooling",
    "epochs": "epochs",
    "batch size": "batch_size",
    "gradient accumulation": "gradient_accumulation_steps",
    "learning rate (AdamW)": "lr",
    "weight decay": "weight_decay",
    "schedule": "lr_schedule",
    "warmup steps": "warmup_steps",
    "max tokens": "max_length",
    "mixed precision": "mixed_precision",
    "why this precision": "mixed_precision_reason",
    "LoRA rank": "lora_r",
    "LoRA alpha": "lora_alpha",
    "seed": "seed",
}
METRIC_COLUMNS = (
    ("accuracy", "accuracy", "Accuracy"),
    ("precision_macro", "precision", "Precision (macro)"),
    ("recall_macro", "recall", "Recall (macro)"),
    ("f1_macro", "f1", "F1 (macro)"),
)
DEFAULT_INTENDED_USE = (
    "Classifying short texts like the training messages into the classes above, e.g. flagging "
    "likely spam for review; a teaching and research artefact showing a from-scratch GPT-2 "
    "fine-tuned end to end."
)
RANDOM_INIT_INTENDED_USE = (
    "A teaching and research artefact: the whole network learned from the training messages "
    "alone, with no pre-training, so it shows what this architecture learns from a few thousand "
    "labelled texts. Use it to study the method or as a baseline; for flagging real messages, "
    "prefer a model fine-tuned from pre-trained weights and check it on your own data first."
)
# Settings whose values are places on the training machine: the card keeps only their names.
PATH_KEYS = ("data_file", "dataset_dir", "output_dir", "run_dir", "cache_dir", "config",
             "resume_from_checkpoint", "tokenizer_folder")  # fmt: skip


class CardError(UsageError):  # a ValueError: one line at the command line
    """The inputs of a model card are missing or malformed, or its metadata is invalid."""


def read_json(path: Path) -> dict:
    """A JSON object from ``path``, with errors that name the file."""
    if not path.is_file():
        raise CardError(f"{path} not found: the trainer writes it next to the model")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as err:
        raise CardError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from err
    if not isinstance(data, dict):
        raise CardError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def metric_splits(metrics: Mapping, source: Path | str = METRICS_FILE) -> dict[str, dict]:
    """The per-split metric dicts of ``metrics.json``, checked for the keys the card needs."""
    splits = {
        name: value
        for name, value in metrics.items()
        if isinstance(value, Mapping) and "accuracy" in value
    }
    if RESULT_SPLITS[0] not in splits and RESULT_SPLITS[1] not in splits:
        raise CardError(
            f"{source}: needs a 'validation' or 'test' entry with accuracy etc.; "
            f"found top-level keys {sorted(metrics)}"
        )
    for name, value in splits.items():
        missing = [key for key in SPLIT_KEYS if key not in value]
        if missing:
            raise CardError(f"{source}: split {name!r} lacks {missing}")
    return splits


def read_run_record(path: Path) -> RunRecord:
    """A run's ``training_args.json``, with errors that name the file."""
    return RunRecord.from_json(read_json(path))


def card_settings(record: RunRecord, splits: Mapping[str, Mapping]) -> dict:
    """The dataset/dedupe/balance/size/base-model facts of a run."""
    summary = record.data_summary or {}
    keep_duplicates = record.get("keep_duplicates")
    train_size = record.num_train_examples
    if train_size is None and "train" in splits:
        train_size = splits["train"]["num_examples"]
    dataset = record.get("dataset") or summary.get("source") or record.get("data_file")
    return {
        "dataset": str(dataset or ""),
        "dedupe": "unknown" if keep_duplicates is None else not keep_duplicates,
        "balance": record.get("balance", "unknown"),
        "num_train_examples": "an unknown number of" if train_size is None else train_size,
        "base_model": record.get("model"),
        "init": record.get("init"),
    }


def base_model_id(settings: Mapping) -> str | None:
    """Hub id of the pre-trained starting point, or None for random initialisation."""
    if settings.get("init") == "random":
        return None
    base = settings.get("base_model")
    if not base:
        return None
    base = str(base)
    if base in PRESET_HUB_IDS:
        return PRESET_HUB_IDS[base]
    return base if re.fullmatch(r"[\w.-]+/[\w.-]+", base) and not Path(base).exists() else None


def dataset_info(settings: Mapping) -> tuple[str | None, str, str, str]:
    """``(hub_id or None, short name, markdown description, bibtex citation or "")``."""
    dataset = str(settings["dataset"])
    if not dataset:
        return None, "training data", "Not recorded in training_args.json.", ""
    # Hub sources are recorded as "owner/name[split]" by the data module.
    dataset = re.sub(r"\[[^\]]*\]$", "", dataset)
    if Path(dataset).name in SMS_NAMES or dataset in SMS_NAMES:
        return SMS_DATASET_ID, "SMS Spam Collection", SMS_DESCRIPTION, SMS_CITATION
    is_hub_id = re.fullmatch(r"[\w.-]+/[\w.-]+", dataset) and not Path(dataset).exists()
    if is_hub_id:
        description = f"The Hub dataset [{dataset}](https://huggingface.co/datasets/{dataset})."
        return dataset, dataset, description, ""
    return None, Path(dataset).name, f"A local data file, `{Path(dataset).name}`.", ""


def eval_results(
    splits: Mapping[str, Mapping], dataset_type: str, dataset_name: str
) -> list[EvalResult]:
    """``model-index`` entries: the summary metrics of the validation and test splits."""
    results = []
    for split in RESULT_SPLITS:
        if split not in splits:
            continue
        for key, metric_type, metric_name in METRIC_COLUMNS:
            results.append(
                EvalResult(
                    task_type="text-classification",
                    task_name="Text Classification",
                    dataset_type=dataset_type,
                    dataset_name=dataset_name,
                    dataset_split=split,
                    metric_type=metric_type,
                    metric_name=metric_name,
                    metric_value=round(float(splits[split][key]), 6),
                    metric_args={"average": "macro"} if key != "accuracy" else None,
                )
            )
    return results


def build_card_data(
    splits: Mapping[str, Mapping], record: RunRecord, settings: Mapping, model_name: str
) -> ModelCardData:
    hub_dataset, dataset_name, _, _ = dataset_info(settings)
    tags = ["text-classification", "gpt2", "scratchgpt", "llms-from-scratch", "custom_code"]
    if hub_dataset == SMS_DATASET_ID:
        tags.append("spam-detection")
    return ModelCardData(
        model_name=model_name,
        license=str(record.get("license", "apache-2.0")),
        language=record.get("language", "en"),
        library_name="transformers",
        pipeline_tag="text-classification",
        tags=tags,
        datasets=[hub_dataset] if hub_dataset else None,
        base_model=base_model_id(settings),
        metrics=["accuracy", "precision", "recall", "f1"],
        eval_results=eval_results(splits, hub_dataset or dataset_name, dataset_name),
    )


def results_table(splits: Mapping[str, Mapping], settings: Mapping) -> str:
    """Markdown: one row per split with the data settings that produced it."""
    lines = [
        "| split | examples | accuracy | precision (macro) | recall (macro) | F1 (macro) "
        "| dedupe | balance |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for split, m in splits.items():
        lines.append(
            f"| {split} | {m['num_examples']} | {m['accuracy']:.4f} | {m['precision_macro']:.4f} "
            f"| {m['recall_macro']:.4f} | {m['f1_macro']:.4f} | {settings['dedupe']} "
            f"| {settings['balance']} |"
        )
    return "\n".join(lines)


def per_class_table(metrics: Mapping) -> str:
    lines = ["| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for name in metrics.get("label_names", metrics.get("per_class", {})):
        row = metrics["per_class"][name]
        lines.append(
            f"| {name} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1']:.4f} "
            f"| {row['support']} |"
        )
    return "\n".join(lines)


def without_local_paths(args: Mapping) -> dict:
    """The settings with every local path cut to its last part: a card is public, and the
    folders of the machine that trained the model mean nothing to its readers."""
    public = dict(args)
    for key in PATH_KEYS:
        if isinstance(public.get(key), str):
            public[key] = Path(public[key]).name
    best = public.get("best")
    if isinstance(best, dict) and isinstance(best.get("checkpoint"), str):
        public["best"] = {**best, "checkpoint": Path(best["checkpoint"]).name}
    summary = public.get("data_summary")
    if isinstance(summary, dict) and _is_local_path(str(summary.get("source", ""))):
        public["data_summary"] = {**summary, "source": Path(summary["source"]).name}
    # --model is a preset, a Hub id or a folder: only a folder is cut.
    if isinstance(public.get("model"), str) and _is_local_path(public["model"]):
        public["model"] = Path(public["model"]).name
    return public


def _is_local_path(value: str) -> bool:
    """Absolute, explicitly relative, or existing here (a Hub id ``user/name`` is none)."""
    return (
        os.path.isabs(value)
        or value.startswith(("./", "../", "~"))
        or (os.sep in value and Path(value).exists())
    )


def recipe_table(record: RunRecord) -> str:
    rows = [(label, record.get(name)) for label, name in RECIPE_ROWS.items()]
    # The LoRA flags have defaults even when LoRA is off: show them only for LoRA runs.
    lora = record.get("trainable") == "lora"
    rows = [(k, v) for k, v in rows if v is not None and (lora or not k.startswith("LoRA"))]
    if not rows:
        return "The settings are listed below."
    lines = ["| setting | value |", "|---|---|"]
    lines += [f"| {label} | `{value}` |" for label, value in rows]
    return "\n".join(lines)


def find_plots(output_dir: Path) -> list[tuple[str, str]]:
    """``(title, relative path)`` of the PNG plots in ``output_dir`` and ``output_dir/plots``."""
    files = sorted(output_dir.glob("*.png")) + sorted(output_dir.glob("plots/*.png"))
    return [
        (
            p.stem.replace("_", " ").replace("-", " ").capitalize(),
            p.relative_to(output_dir).as_posix(),
        )
        for p in files
    ]


def base_model_sentence(base: str | None, pretraining: Sequence[Mapping] = ()) -> str:
    """Where the weights came from: a Hub model, or random initialisation (and, with
    ``--pretrain-epochs``, next-token pretraining on the training texts first: one record
    per epoch in ``pretraining``)."""
    if base:
        return f"Fine-tuned from [{base}](https://huggingface.co/{base})."
    sentence = "Trained from random initialisation (no pre-trained weights)"
    if epochs := len(pretraining):
        sentence += (
            f": {epochs} epoch(s) of next-token pretraining on the training split's own texts, "
            "then fine-tuned"
        )
    return sentence + "."


def template_values(
    output_dir: Path, splits: Mapping, record: RunRecord, settings: Mapping, repo_id: str
) -> dict:
    config = read_json(output_dir / "config.json") if (output_dir / "config.json").is_file() else {}
    context = config.get("context_length") or record.get("context_length")
    first = next(iter(splits.values()))
    _, _, description, citation = dataset_info(settings)
    base = base_model_id(settings)
    sizes = ", ".join(f"{split} {m['num_examples']}" for split, m in splits.items())
    detail_split = "test" if "test" in splits else "validation"
    return {
        "model_name": str(record.model_name or output_dir.resolve().name),
        "repo_id": repo_id,
        "label_names": list(first.get("label_names", [])),
        "base_model_sentence": base_model_sentence(base, record.pretraining),
        "intended_use": record.get(
            "intended_use", DEFAULT_INTENDED_USE if base else RANDOM_INIT_INTENDED_USE
        ),
        "pretrained": bool(base),
        "dataset_description": description,
        "dataset_citation": citation,
        "dedupe": settings["dedupe"],
        "balance": settings["balance"],
        "split_sizes": f"Examples per split: {sizes}.",
        "recipe_table": recipe_table(record),
        "training_args_json": json.dumps(
            without_local_paths(record.to_json()), indent=2, sort_keys=True, default=str
        ),
        "results_table": results_table(splits, settings),
        "per_class_tables": [(detail_split, per_class_table(splits[detail_split]))],
        "plots": find_plots(output_dir),
        "num_train_examples": settings["num_train_examples"],
        "context_sentence": (
            f"Texts longer than the context of {context} tokens are truncated to their first "
            f"{context} tokens."
            if context
            else "Texts longer than the model's context are truncated."
        ),
    }


def render_model_card(
    output_dir: str | Path, repo_id: str | None = None, template_path: str | Path | None = None
) -> ModelCard:
    """The card for ``output_dir`` (not written), validated offline."""
    output_dir = Path(output_dir)
    metrics_path = output_dir / METRICS_FILE
    splits = metric_splits(read_json(metrics_path), metrics_path)
    record = read_run_record(output_dir / RUN_RECORD_FILE)
    settings = card_settings(record, splits)
    model_name = str(record.model_name or output_dir.resolve().name)
    repo_id = repo_id or f"YOUR_USER/{model_name}"
    template = Path(template_path) if template_path else TEMPLATE_PATH
    if not template.is_file():
        raise CardError(f"model card template {template} not found")
    card = ModelCard.from_template(
        build_card_data(splits, record, settings, model_name),
        template_str=template.read_text(encoding="utf-8-sig"),
        **template_values(output_dir, splits, record, settings, repo_id),
    )
    validate_card(card)
    return card


def write_model_card(
    output_dir: str | Path, repo_id: str | None = None, template_path: str | Path | None = None
) -> Path:
    """Render and write ``output_dir/README.md`` atomically; returns its path.

    ``repo_id`` (default ``YOUR_USER/<model_name>``) appears in the loading examples.
    """
    card = render_model_card(output_dir, repo_id, template_path)
    path = Path(output_dir) / CARD_FILE
    return atomic_write(path, str(card))


LICENSE_PATTERN = re.compile(r"[a-z0-9][a-z0-9.+-]*")
LANGUAGE_PATTERN = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]+)*")
REPO_ID_PATTERN = re.compile(r"[\w.-]+/[\w.-]+")


def card_problems(card: ModelCard | str) -> list[str]:
    """What is wrong with a card's metadata, checked offline; empty when it is valid."""
    try:
        data = ModelCard(str(card), ignore_metadata_errors=False).data
    except Exception as err:  # any parse failure is a problem to report
        return [f"metadata does not parse: {type(err).__name__}: {err}"]
    problems = []
    expected = {"pipeline_tag": "text-classification", "library_name": "transformers"}
    for key, value in expected.items():
        if getattr(data, key) != value:
            problems.append(f"{key} is {getattr(data, key)!r}, expected {value!r}")
    if not data.license or not LICENSE_PATTERN.fullmatch(str(data.license)):
        problems.append(f"license {data.license!r} is not a Hub license id like 'apache-2.0'")
    languages = [data.language] if isinstance(data.language, str) else data.language or []
    if not languages or not all(LANGUAGE_PATTERN.fullmatch(str(x)) for x in languages):
        problems.append(f"language {data.language!r} is not a list of ISO 639 codes")
    if not data.tags:
        problems.append("tags are missing")
    for key in ("datasets", "base_model"):
        values = getattr(data, key)
        values = [values] if isinstance(values, str) else values or []
        problems += [
            f"{key} entry {v!r} is not a Hub id"
            for v in values
            if not REPO_ID_PATTERN.fullmatch(str(v))
        ]
    problems += _eval_result_problems(data.eval_results)
    return problems


def _eval_result_problems(results: list[EvalResult] | None) -> list[str]:
    if not results:
        return ["model-index has no results (metrics.json validation/test numbers)"]
    return [
        f"model-index {r.dataset_split} {r.metric_type} = {r.metric_value!r}: not in [0, 1]"
        for r in results
        if not isinstance(r.metric_value, (int, float)) or not 0 <= r.metric_value <= 1
    ]


def validate_card(card: ModelCard | str) -> None:
    """Raise ``CardError`` listing every metadata problem (offline check)."""
    problems = card_problems(card)
    if problems:
        raise CardError("invalid model card metadata:\n  - " + "\n  - ".join(problems))
