"""Settings of ``push_to_hub``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scratchgpt.arguments import ArgumentParser, arg, as_path


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
    no_load_check: bool = arg(
        False, "skip loading the folder in a fresh process (saves a few seconds)"
    )

    def __post_init__(self) -> None:
        self.model = as_path(self.model)


def build_push_parser() -> ArgumentParser:
    """The flags of ``scripts/push_to_hub.py``."""
    return ArgumentParser(
        PushArguments,
        prog="push_to_hub.py",
        description="Upload a fine-tuned model folder (weights, code, tokenizer, card, plots) "
        "to the Hugging Face Hub as one commit, after checking it locally.",
    )
