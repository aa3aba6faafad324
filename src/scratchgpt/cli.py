"""The command lines of ``scripts/*.py``: flags first, then the heavy imports, then the work.

Each ``*_main(argv)`` parses its flags with the parser from the command's ``arguments`` module,
which imports neither torch nor transformers' model code, so ``--help`` and flag errors answer
at once; only then does it import the code that runs the command. Expected failures (a bad file,
damaged weights, no network, an occupied folder) print one line ``<script>: error: <message>``
to stderr and exit 2, as argparse does for a bad flag; anything else keeps its traceback,
because it is a bug to report.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TextIO

from scratchgpt.app.arguments import build_app_parser
from scratchgpt.arguments import ArgumentParser
from scratchgpt.data.arguments import build_prepare_parser
from scratchgpt.hub.arguments import build_push_parser, build_space_parser
from scratchgpt.inference.arguments import (
    build_classify_parser,
    build_evaluate_parser,
    build_generate_parser,
)
from scratchgpt.training.arguments import build_parser as build_finetune_parser
from scratchgpt.weights.arguments import build_convert_parser

# Exit status of an expected failure: argparse's, so a bad flag and a bad file look alike.
USAGE_ERROR = 2


def fail(parser: ArgumentParser, err: BaseException | str) -> int:
    """Print ``<prog>: error: <err>`` on one line to stderr; returns the exit status, 2."""
    message = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    print(f"{parser.prog}: error: {message}", file=sys.stderr)
    return USAGE_ERROR


def model_errors() -> tuple[type[BaseException], ...]:
    """What loading a model folder raises for a user's mistake rather than a bug."""
    from scratchgpt.inference.classify import HubDownloadError

    return (ValueError, FileNotFoundError, HubDownloadError)


def classify_main(argv: Sequence[str] | None = None, stdin: TextIO | None = None) -> int:
    """``scripts/classify.py``: a table or JSON lines of labels and probabilities."""
    parser = build_classify_parser()
    args, positionals = parser.parse(argv)
    from scratchgpt.inference.classify import classify, format_results_table

    try:
        results = classify(args, positionals.texts, stdin)
    except model_errors() as err:
        return fail(parser, err)
    if args.format == "jsonl":
        for row in results:
            record = {"text": row["text"], "label": row["label"], "score": row["score"]}
            print(json.dumps({**record, "scores": row["scores"]}, ensure_ascii=False))
    else:
        print(format_results_table(results))
    return 0


def evaluate_main(argv: Sequence[str] | None = None) -> int:
    """``scripts/evaluate.py``: metrics table, optional mistakes, plots and metrics.json."""
    parser = build_evaluate_parser()
    args, _ = parser.parse(argv)
    from scratchgpt.inference.evaluate import evaluate
    from scratchgpt.metrics.report import format_errors, format_metrics_table

    try:
        metrics = evaluate(args)
    except model_errors() as err:
        return fail(parser, err)
    print(format_metrics_table(metrics, title=f"{args.model} — {args.split} split"))
    if args.errors:
        print(f"\n{len(metrics['errors'])} most confident mistakes:")
        print(format_errors(metrics["errors"], metrics["label_names"]))
    print(
        f"\nwrote {metrics['output_dir']}/confusion_matrix.png, precision_recall.png, metrics.json"
    )
    return 0


def generate_main(argv: Sequence[str] | None = None) -> int:
    """``scripts/generate.py``: the prompt's continuation(s)."""
    parser = build_generate_parser()
    args, positionals = parser.parse(argv)
    from scratchgpt.inference.generate import generate

    try:
        texts = generate(args, positionals.prompt)
    except model_errors() as err:
        return fail(parser, err)
    for index, text in enumerate(texts, start=1):
        prefix = f"--- sample {index}\n" if len(texts) > 1 else ""
        sys.stdout.write(f"{prefix}{text}\n")
    return 0


def push_main(argv: Sequence[str] | None = None) -> int:
    """``scripts/push_to_hub.py``: the local check in full, then one upload commit."""
    parser = build_push_parser()
    args, _ = parser.parse(argv)
    from scratchgpt.hub.push import HubPushError, check_push, format_check, upload

    try:
        result = check_push(args)  # printed in full before anything is uploaded
    except (ValueError, FileNotFoundError) as err:
        return fail(parser, err)
    print(format_check(result, args.repo_id))
    if not result.ok:
        return fail(parser, f"not pushing: fix the {len(result.problems)} problem(s) above")
    if args.dry_run:
        print("dry run: nothing uploaded")
        return 0
    try:
        url = upload(args)
    except HubPushError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 1
    print(f"pushed: {url}")
    return 0


def convert_main(argv: Sequence[str] | None = None) -> int:
    """``scripts/convert_openai_checkpoint.py``: read (or download) weights, write a folder."""
    parser = build_convert_parser()
    args, _ = parser.parse(argv)
    from scratchgpt.download import DownloadError
    from scratchgpt.weights.convert import run

    try:
        run(args)
    except (ValueError, DownloadError, OSError) as err:
        # Bad input (ConversionError and CheckpointError are ValueErrors), no network, disk.
        return fail(parser, err)
    return 0


def prepare_data_main(argv: Sequence[str] | None = None) -> int:
    """``scripts/prepare_data.py``: prepare, save, print the summary."""
    parser = build_prepare_parser()
    args, _ = parser.parse(argv)
    from scratchgpt.data.prepare import prepare_data
    from scratchgpt.data.sources import DataError

    try:
        prepared = prepare_data(args)
    except (DataError, FileNotFoundError) as err:
        return fail(parser, err)
    print(prepared.summary.format())
    print(f"saved to {args.output_dir}")
    return 0


def finetune_main(argv: Sequence[str] | None = None) -> int:
    """``scripts/finetune.py`` (alone or under ``accelerate launch``): train, evaluate, write."""
    parser = build_finetune_parser()
    args, _ = parser.parse(argv)
    from scratchgpt.data.sources import DataError
    from scratchgpt.download import DownloadError
    from scratchgpt.training.loop import SetupError, finetune
    from scratchgpt.weight_files import ModelFolderError

    expected = (DataError, DownloadError, SetupError, ModelFolderError, FileExistsError)
    try:
        finetune(args)
    except (*expected, FileNotFoundError) as err:
        return fail(parser, err)
    return 0


def app_main(argv: Sequence[str] | None = None) -> int:
    """``scripts/app.py``: load the model once, then serve the page until interrupted."""
    parser = build_app_parser()
    args, _ = parser.parse(argv)  # before gradio or the model load: --help is instant
    from scratchgpt.app import build_app, launch
    from scratchgpt.inference.classify import HubDownloadError

    try:
        demo = build_app(args)
    except (ValueError, FileNotFoundError, HubDownloadError) as err:
        return fail(parser, err)
    launch(demo, args)
    return 0


def push_space_main(argv: Sequence[str] | None = None) -> int:
    """``scripts/push_space.py``: write the Space, start its app locally, then upload it."""
    parser = build_space_parser()
    args, _ = parser.parse(argv)
    import subprocess

    from scratchgpt.hub.push import HubPushError
    from scratchgpt.hub.space import push_space

    try:
        url = push_space(args, report=True)
    except (ValueError, FileNotFoundError) as err:
        return fail(parser, err)
    except (HubPushError, subprocess.TimeoutExpired) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 1
    print("dry run: nothing uploaded" if args.dry_run else f"pushed: {url}")
    return 0
