"""Share a fine-tuned model folder on the Hugging Face Hub (``scripts/push_to_hub.py``).

Before anything touches the network, ``check_folder`` verifies locally what the Hub would get:
the model folder is complete, the card's YAML metadata is valid (``scratchgpt.hub.card``), every
file that would be uploaded is listed with its size, and the folder loads through the Auto API
with ``trust_remote_code`` in a fresh Python process (so the folder's own code is what runs,
not the installed library). ``--dry-run`` stops there and needs no network or token.

The real push creates the repo (``exist_ok``) and uploads the folder with ``upload_folder``,
which makes a single commit: the Hub gets every file or none, so a failed push leaves no
partial model behind (at worst an empty repo that ``create_repo`` made).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import HfApi, constants, get_token
from huggingface_hub.hf_api import DEFAULT_IGNORE_PATTERNS
from huggingface_hub.utils import filter_repo_objects, validate_repo_id
from transformers import AutoModelForSequenceClassification

from scratchgpt.folder import check_folder_weights
from scratchgpt.hub.arguments import PushArguments
from scratchgpt.hub.card import (
    CARD_FILE,
    METRICS_FILE,
    card_problems,
    render_model_card,
)
from scratchgpt.paths import MODEL_CODE_FILES
from scratchgpt.run_record import RUN_RECORD_FILE
from scratchgpt.weight_files import ModelFolderError

# Hidden files (temp files of atomic writes, editor droppings) and caches never go up.
IGNORE_PATTERNS = [*DEFAULT_IGNORE_PATTERNS, ".*", "**/.*", "*/.*", "__pycache__/*", "*.pyc"]
# Training logs: the step log and TensorBoard events (at any depth), which the model, its
# card, metrics and plots already summarise; uploaded only with --include-logs.
LOG_PATTERNS = ["steps.jsonl", "*events.out.tfevents*", "logs/*"]
REQUIRED_FILES = ("config.json", *MODEL_CODE_FILES)
TOKENIZER_FILES = ("vocab.json", "merges.txt")
LOAD_CHECK_TIMEOUT_S = 300

# Runs in a fresh interpreter: only transformers and the folder's own code are involved.
LOAD_CHECK_CODE = """
import json, sys
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
folder = sys.argv[1]
model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)
tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
clf = pipeline("text-classification", model=model, tokenizer=tokenizer)
out = clf(["Hello, are we still meeting at six?", "WIN a free prize now, call 0800 123"])
print("LOAD_CHECK", json.dumps({"class": type(model).__module__ + "." + type(model).__name__,
                  "labels": [r["label"] for r in out]}))
"""


class HubPushError(RuntimeError):
    """Pushing failed; the message says at which step and why."""


@dataclass
class FolderCheck:
    """What a dry run found: files to upload, card problems, load-check outcome."""

    folder: Path
    files: list[tuple[str, int]] = field(default_factory=list)
    card_generated: bool = False
    problems: list[str] = field(default_factory=list)
    load_result: dict | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)


def ignore_patterns(include_logs: bool = False) -> list[str]:
    return IGNORE_PATTERNS if include_logs else [*IGNORE_PATTERNS, *LOG_PATTERNS]


def upload_file_list(folder: str | Path, include_logs: bool = False) -> list[tuple[str, int]]:
    """``(path in repo, size)`` of every file ``upload_folder`` will send, sorted."""
    folder = Path(folder)
    paths = {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}
    kept = filter_repo_objects(sorted(paths), ignore_patterns=ignore_patterns(include_logs))
    return [(name, paths[name].stat().st_size) for name in kept]


def missing_model_files(folder: Path) -> list[str]:
    names = {p.name for p in folder.iterdir()}
    missing = [name for name in (*REQUIRED_FILES, *TOKENIZER_FILES) if name not in names]
    if not any(name.endswith(".safetensors") for name in names):
        missing.append("model.safetensors (or shards)")
    return missing


def check_card(folder: Path, repo_id: str | None) -> tuple[list[str], bool, str | None]:
    """``(problems, would_generate, card_text)``: README.md is validated, or rendered in memory
    from metrics.json + training_args.json when it is absent."""
    card_path = folder / CARD_FILE
    if card_path.is_file():
        text = card_path.read_text(encoding="utf-8-sig")
        return [f"{card_path}: {p}" for p in card_problems(text)], False, text
    if (folder / METRICS_FILE).is_file() and (folder / RUN_RECORD_FILE).is_file():
        try:
            card = render_model_card(folder, repo_id)
        except ValueError as err:
            return [f"model card cannot be rendered: {err}"], True, None
        return [], True, str(card)
    return [f"{card_path} is missing and there is no {METRICS_FILE} to render it from"], False, None


def load_check(folder: Path) -> dict:
    """Load the folder with the Auto API + pipeline in a fresh, offline Python process."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    with tempfile.TemporaryDirectory() as cwd:  # away from the repo: no local imports
        proc = subprocess.run(
            [sys.executable, "-c", LOAD_CHECK_CODE, str(folder.resolve())],
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,
            timeout=LOAD_CHECK_TIMEOUT_S,
        )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        raise HubPushError(f"{folder} does not load with trust_remote_code:\n{tail}")
    reports = [line for line in proc.stdout.splitlines() if line.startswith("LOAD_CHECK ")]
    if not reports:
        raise HubPushError(f"load check of {folder} printed no result:\n{proc.stdout[-2000:]}")
    return json.loads(reports[-1].removeprefix("LOAD_CHECK "))


def check_folder(
    folder: str | Path, repo_id: str | None = None, load: bool = True, include_logs: bool = False
) -> FolderCheck:
    """Every local check of a push, no network: see the module docstring."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"--model {folder}: no such folder")
    result = FolderCheck(folder, upload_file_list(folder, include_logs))
    missing = missing_model_files(folder)
    if missing:
        result.problems.append(f"{folder} lacks model files: {', '.join(missing)}")
    card_issues, result.card_generated, card_text = check_card(folder, repo_id)
    result.problems += card_issues
    if result.card_generated and card_text is not None:
        result.files = sorted([*result.files, (CARD_FILE, len(card_text.encode("utf-8")))])
    if not missing:
        try:  # a damaged weight file is named here, not by a traceback from the load check
            check_folder_weights(AutoModelForSequenceClassification, folder)
        except (ModelFolderError, OSError) as err:  # ModelFolderError is a ValueError
            result.problems.append(str(err))
            load = False
    if load and not missing:
        try:
            result.load_result = load_check(folder)
        except (HubPushError, subprocess.TimeoutExpired) as err:
            result.problems.append(str(err))
    return result


def format_check(result: FolderCheck, repo_id: str) -> str:
    lines = [f"would upload to https://huggingface.co/{repo_id} ({len(result.files)} files):"]
    width = max((len(name) for name, _ in result.files), default=10)
    for name, size in result.files:
        note = (
            "  (generated from metrics.json)" if name == CARD_FILE and result.card_generated else ""
        )
        lines.append(f"  {name:<{width}}  {human_size(size):>10}{note}")
    lines.append(f"  {'total':<{width}}  {human_size(result.total_bytes):>10}")
    if result.load_result:
        lines.append(f"loads with trust_remote_code as {result.load_result['class']}")
    lines += [f"PROBLEM: {p}" for p in result.problems]
    lines.append(
        "checks: card metadata valid, model files present"
        if result.ok
        else f"{len(result.problems)} problem(s)"
    )
    return "\n".join(lines)


def human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"


def write_token(token: str | None) -> str:
    """The token to push with (``token``, else HF_TOKEN or the login); refuses when offline."""
    if constants.HF_HUB_OFFLINE:
        raise HubPushError("HF_HUB_OFFLINE is set: unset it to push (nothing was uploaded)")
    token = token or get_token()
    if not token:
        raise HubPushError(
            "no Hugging Face token: pass --token, set HF_TOKEN or run `hf auth login` "
            "(nothing was uploaded)"
        )
    return token


def push_folder(
    folder: str | Path,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    include_logs: bool = False,
) -> str:
    """Create ``repo_id`` if needed and upload ``folder`` as one commit; returns its URL.

    Call ``check_folder`` first. A missing README.md is written from metrics.json first.
    """
    folder = Path(folder)
    token = write_token(token)
    if not (folder / CARD_FILE).is_file():
        from scratchgpt.hub.card import write_model_card

        write_model_card(folder, repo_id)
    api = HfApi(token=token)
    step = "create the repo"
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision:
            step = f"create branch {revision!r}"
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        step = "upload the folder"
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            revision=revision,
            commit_message=commit_message or f"Upload {folder.name} with scratchgpt",
            ignore_patterns=ignore_patterns(include_logs),
        )
    except Exception as err:  # network/HTTP errors come in many types
        raise HubPushError(
            f"could not {step} on {constants.ENDPOINT} for {repo_id!r}: {type(err).__name__}: "
            f"{err}\nNo files were committed: upload_folder sends all files in one commit, "
            "which either lands whole or not at all."
        ) from err
    return commit.commit_url


# ----------------------------------------------------------------- command line (push_to_hub.py)


def check_push(args: PushArguments) -> FolderCheck:
    """What ``push_to_hub`` checks before uploading: the repo id, the files, the card and
    (unless ``args.no_load_check``) a load in a fresh process. Raises ``ValueError`` for a bad
    repo id, ``FileNotFoundError`` for a missing folder."""
    validate_repo_id(args.repo_id)
    if args.repo_id.count("/") != 1:
        raise ValueError(f"repo id {args.repo_id!r} must be USER/NAME")
    return check_folder(
        args.model, args.repo_id, load=not args.no_load_check, include_logs=args.include_logs
    )


def push_to_hub(args: PushArguments) -> str:
    """``push_to_hub``: check the folder, then upload it as one commit; returns the commit
    URL, or ``""`` for ``args.dry_run``. A failed check raises ``ValueError`` listing it."""
    result = check_push(args)
    if not result.ok:
        raise ValueError(f"{args.model} is not ready to push: " + "; ".join(result.problems))
    if args.dry_run:
        return ""
    return upload(args)


def upload(args: PushArguments) -> str:
    """One commit of the (checked) folder, as ``args`` says; returns the commit URL."""
    return push_folder(
        args.model,
        args.repo_id,
        args.private,
        args.revision,
        args.token,
        args.commit_message,
        args.include_logs,
    )
