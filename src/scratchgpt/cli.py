"""The command lines of ``scripts/*.py``: flags first, then the heavy imports, then the work.

Each ``*_main(argv)`` parses its flags with the parser from the command's ``arguments`` module,
which imports neither torch nor transformers' model code, so ``--help`` and flag errors answer
at once; only then does it import the code that runs the command. :func:`guarded` is the one
error boundary: expected failures (a bad file, damaged weights, no network, an occupied folder,
a full disk) print one line ``<script>: error: <message>`` to stderr and exit 2, as argparse
does for a bad flag; Ctrl-C and SIGTERM print one ``<script>: interrupted: <what was kept>``
line and exit 130; anything else keeps its traceback, because it is a bug to report.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import yaml

from scratchgpt.app.arguments import build_app_parser
from scratchgpt.arguments import ArgumentParser
from scratchgpt.data.arguments import build_prepare_parser
from scratchgpt.files import UsageError, describe_os_error
from scratchgpt.hub.arguments import build_push_parser, build_space_parser
from scratchgpt.inference.arguments import (
    build_classify_parser,
    build_evaluate_parser,
    build_generate_parser,
)
from scratchgpt.training.arguments import build_parser as build_finetune_parser
from scratchgpt.weights.arguments import build_convert_parser

if TYPE_CHECKING:
    from scratchgpt.training.arguments import FinetuneArguments

# Exit status of an expected failure: argparse's, so a bad flag and a bad file look alike.
USAGE_ERROR = 2
INTERRUPTED = 130  # the shell's 128 + SIGINT


def fail(parser: ArgumentParser, err: BaseException | str) -> int:
    """Print ``<prog>: error: <err>`` on one line to stderr; returns the exit status, 2."""
    text = describe_os_error(err) if isinstance(err, OSError) else str(err)
    message = " ".join(line.strip() for line in text.splitlines() if line.strip())
    print(f"{parser.prog}: error: {message}", file=sys.stderr)
    return USAGE_ERROR


def expected_errors() -> tuple[type[BaseException], ...]:
    """What a user's input, flags, files, network or disk cause, rather than a bug.

    ``ValueError`` covers the library's typed errors (``UsageError``, ``DataError``,
    ``ModelFolderError``, ``SetupError``, ...), ``OSError`` the files, permissions and full
    disks; the two download errors are ``RuntimeError``s. Anything else is a bug: traceback.
    """
    from scratchgpt.download import DownloadError

    found: list[type[BaseException]] = [ValueError, OSError, DownloadError, yaml.YAMLError]
    if "scratchgpt.inference.classify" in sys.modules:  # only loaded where a model is
        found.append(sys.modules["scratchgpt.inference.classify"].HubDownloadError)
    return tuple(found)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM ends a command as Ctrl-C does: cleanly, saying so


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    text = " ".join(str(message).split())
    print(f"{_one_line_warning.prog}: warning: {text}", file=file or sys.stderr)


def guarded(
    parser: ArgumentParser,
    work: Callable[[], int],
    interrupted: Callable[[], str] = lambda: "nothing was written",
) -> int:
    """The error boundary of every command: run ``work``; an expected failure is one
    ``<prog>: error: ...`` line and status 2, Ctrl-C or SIGTERM one ``<prog>: interrupted: ...``
    line saying what was kept and status 130, a warning one ``<prog>: warning: ...`` line."""
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None
    _one_line_warning.prog = parser.prog
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            try:
                return work()
            except KeyboardInterrupt:
                print(f"{parser.prog}: interrupted: {interrupted()}", file=sys.stderr)
                return INTERRUPTED
            except BrokenPipeError:  # `classify.py ... | head`: the reader has all it wants
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())  # so the exit's flush cannot fail again
                return 0
            except expected_errors() as err:
                return fail(parser, err)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def classify_main(argv: Sequence[str] | None = None, stdin: TextIO | None = None) -> int:
    """``scripts/classify.py``: a table or JSON lines of labels and probabilities."""
    parser = build_classify_parser()
    args, positionals = parser.parse(argv)

    def work() -> int:
        from scratchgpt.inference.classify import classify, format_results_table

        results = classify(args, positionals.texts, stdin)
        if args.format == "jsonl":
            for row in results:
                record = {"text": row["text"], "label": row["label"], "score": row["score"]}
                print(json.dumps({**record, "scores": row["scores"]}, ensure_ascii=False))
        else:
            print(format_results_table(results))
        return 0

    return guarded(parser, work)


def evaluate_main(argv: Sequence[str] | None = None) -> int:
    """``scripts/evaluate.py``: metrics table, optional mistakes, plots and metrics.json."""
    parser = build_evaluate_parser()
    args, _ = parser.parse(argv)

    def work() -> int:
        from scratchgpt.inference.evaluate import evaluate
        from scratchgpt.metrics.report import format_errors, format_metrics_table

        metrics = evaluate(args)
        print(format_metrics_table(metrics, title=f"{args.model} — {args.split} split"))
        if args.errors:
            print(f"\n{len(metrics['errors'])} most confident mistakes:")
            print(format_errors(metrics["errors"], metrics["label_names"]))
        out = metrics["output_dir"]
        print(f"\nwrote {out}/confusion_matrix.png, precision_recall.png, metrics.json")
        return 0

    return guarded(parser, work, lambda: "metrics.json and the plots are written only whole")


def generate_main(argv: Sequence[str] | None = None) -> int:
    """``scripts/generate.py``: the prompt's continuation(s)."""
    parser = build_generate_parser()
    args, positionals = parser.parse(argv)

    def work() -> int:
        from scratchgpt.inference.generate import generate

        texts = generate(args, positionals.prompt)
        for index, text in enumerate(texts, start=1):
            prefix = f"--- sample {index}\n" if len(texts) > 1 else ""
            sys.stdout.write(f"{prefix}{text}\n")
        return 0

    return guarded(parser, work)


def push_main(argv: Sequence[str] | None = None) -> int:
    """``scripts/push_to_hub.py``: the local check in full, then one upload commit."""
    parser = build_push_parser()
    args, _ = parser.parse(argv)

    def work() -> int:
        from scratchgpt.hub.push import HubPushError, check_push, format_check, upload

        result = check_push(args)  # printed in full before anything is uploaded
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

    return guarded(parser, work, lambda: "an upload is one commit: the repo has all or nothing")


def convert_main(argv: Sequence[str] | None = None) -> int:
    """``scripts/convert_openai_checkpoint.py``: read (or download) weights, write a folder."""
    parser = build_convert_parser()
    args, _ = parser.parse(argv)

    def work() -> int:
        from scratchgpt.weights.convert import run

        replacing = args.output_dir.is_dir()
        run(args)
        say_replaced(args.output_dir, replacing)
        return 0

    return guarded(parser, work, lambda: f"nothing was written to {args.output_dir}")


def prepare_data_main(argv: Sequence[str] | None = None) -> int:
    """``scripts/prepare_data.py``: prepare, save, print the summary."""
    parser = build_prepare_parser()
    args, _ = parser.parse(argv)

    def work() -> int:
        from scratchgpt.data.prepare import prepare_data

        replacing = Path(args.output_dir).is_dir()
        prepared = prepare_data(args)
        print(prepared.summary.format())
        print(f"saved to {args.output_dir}")
        say_replaced(args.output_dir, replacing)
        return 0

    return guarded(parser, work, lambda: f"nothing was written to {args.output_dir}")


def finetune_main(argv: Sequence[str] | None = None) -> int:
    """``scripts/finetune.py`` (alone or under ``accelerate launch``): train, evaluate, write."""
    parser = build_finetune_parser()
    args, _ = parser.parse(argv)

    def work() -> int:
        from scratchgpt.training.loop import finetune

        replacing = args.output_dir.is_dir()
        try:
            finetune(args)
        except OSError as err:  # a full disk: the checkpoints so far are worth knowing of
            if (kept := kept_checkpoints(args)) is None:
                raise
            raise UsageError(f"{describe_os_error(err)}; {kept}") from None
        if os.environ.get("RANK", "0") == "0":  # once under accelerate launch (its state is gone)
            say_replaced(args.output_dir, replacing)
        return 0

    return guarded(parser, work, lambda: kept_checkpoints(args) or "no checkpoint was written yet")


def say_replaced(folder: str | Path, replacing: bool) -> None:
    if replacing:
        print(f"replaced the previous {folder}: it was kept until the new one was complete")


def kept_checkpoints(args: FinetuneArguments) -> str | None:
    """What an interrupted or failed run keeps, and the command that continues it."""
    from scratchgpt.training.run_folder import CHECKPOINTS, list_checkpoints

    found = list_checkpoints(args.run_dir) if args.run_dir.is_dir() else []
    if not found:
        return None
    return (
        f"{len(found)} checkpoint(s) kept in {args.run_dir / CHECKPOINTS} (newest "
        f"{found[-1].name}); run the same command with --resume-from-checkpoint latest to "
        "continue from it"
    )


def app_main(argv: Sequence[str] | None = None) -> int:
    """``scripts/app.py``: load the model once, then serve the page until interrupted."""
    parser = build_app_parser()
    args, _ = parser.parse(argv)  # before gradio or the model load: --help is instant

    def work() -> int:
        from scratchgpt.app import build_app, launch

        check_port_free(args.host, args.port)  # before the model loads, not after
        launch(build_app(args), args)
        return 0

    return guarded(parser, work, lambda: "the app stopped")


def check_port_free(host: str, port: int | None) -> None:
    """A ``--host`` this machine cannot serve on, or a ``--port`` another program holds, is
    refused at once, naming it, before the model loads (``None``: gradio picks a free port)."""
    import socket

    try:
        family = socket.getaddrinfo(host, port or 0, type=socket.SOCK_STREAM)[0][0]
    except OSError as err:
        raise UsageError(f"--host {host}: {err.strerror or err}; try 127.0.0.1") from None
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((host, port or 0))
    except OSError as err:
        if port is None:
            raise UsageError(f"--host {host}: {err.strerror or err}; try 127.0.0.1") from None
        raise UsageError(
            f"--port {port} on --host {host}: {err.strerror or err}; stop what uses it or "
            "choose another --port (or leave --port out: the first free one from 7860)"
        ) from None


def push_space_main(argv: Sequence[str] | None = None) -> int:
    """``scripts/push_space.py``: write the Space, start its app locally, then upload it."""
    parser = build_space_parser()
    args, _ = parser.parse(argv)

    def work() -> int:
        import subprocess

        from scratchgpt.hub.push import HubPushError
        from scratchgpt.hub.space import push_space

        try:
            url = push_space(args, report=True)
        except (HubPushError, subprocess.TimeoutExpired) as err:
            print(f"{parser.prog}: error: {err}", file=sys.stderr)
            return 1
        print("dry run: nothing uploaded" if args.dry_run else f"pushed: {url}")
        return 0

    return guarded(parser, work)
