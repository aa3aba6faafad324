"""Settings of ``push_to_hub`` and ``push_space``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scratchgpt.arguments import ArgumentParser, arg, as_path, check_input_path


@dataclass(kw_only=True)
class PushArguments:
    """Which folder goes to which Hub repo, and how."""

    model: Path = arg(help="the model folder to upload")
    repo_id: str = arg(help="target repo, USER/NAME or ORG/NAME")
    private: bool = arg(False, "create the repo as private")
    revision: str | None = arg(None, "branch to push to (created if absent; default main)")
    token: str | None = arg(None, "Hub token with write access (default: HF_TOKEN or login)")
    commit_message: str | None = arg(None, "commit message on the Hub")
    dry_run: bool = arg(
        False,
        "offline: validate the card metadata, list every file and size that would be "
        "uploaded, check the folder loads with trust_remote_code; upload nothing",
    )
    include_logs: bool = arg(
        False,
        "also upload the training logs (steps.jsonl, TensorBoard events), which a Hub user "
        "rarely needs: the card, metrics and plots summarise them",
    )
    no_load_check: bool = arg(
        False, "skip loading the folder in a fresh process (saves a few seconds)"
    )

    def __post_init__(self) -> None:
        self.model = as_path(self.model)
        check_input_path(self, "model", "folder")  # repo ids: checked first by check_push


@dataclass(kw_only=True)
class SpaceArguments:
    """Which Space shows which model repo, and how it is checked and pushed."""

    space: str = arg(help="the Space to create or update, USER/NAME")
    model_repo: str = arg(
        help="the model repo the Space loads (with trust_remote_code), USER/MODEL: push the "
        "folder there first with push_to_hub.py"
    )
    model: Path | None = arg(
        None,
        "a local copy of that model (the folder you pushed): the check starts the Space's app "
        "on it offline (default: the check downloads --model-repo)",
    )
    private: bool = arg(False, "create the Space as private")
    token: str | None = arg(
        None,
        "Hub token with write access (default: HF_TOKEN or login). A private model repo also "
        "needs an HF_TOKEN secret in the Space's settings",
    )
    commit_message: str | None = arg(None, "commit message on the Hub")
    dry_run: bool = arg(
        False,
        "offline: list every file the Space would get and start its app against --model "
        "(required here); upload nothing",
    )
    no_app_check: bool = arg(False, "skip starting the Space's app before uploading (saves ~20 s)")

    def __post_init__(self) -> None:
        self.model = as_path(self.model)
        check_input_path(self, "model", "folder")  # repo ids: checked first by push_space
        if self.dry_run and self.model is None and not self.no_app_check:
            raise ValueError("--dry-run is offline: pass --model FOLDER, a local copy of the model")


def build_push_parser() -> ArgumentParser:
    """The flags of ``scripts/push_to_hub.py``."""
    return ArgumentParser(
        PushArguments,
        prog="push_to_hub.py",
        description="Upload a fine-tuned model folder (weights, code, tokenizer, card, plots) "
        "to the Hugging Face Hub as one commit, after checking it locally.",
    )


def build_space_parser() -> ArgumentParser:
    """The flags of ``scripts/push_space.py``."""
    return ArgumentParser(
        SpaceArguments,
        prog="push_space.py",
        description="Create (or update) a Gradio Space on the Hugging Face Hub that demonstrates "
        "a model repo with scratchgpt's browser app, after starting that app locally.",
    )
