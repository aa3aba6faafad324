"""A Gradio Space from a model repo (``scripts/push_space.py``): its files, the offline dry run
that starts its app from the Space folder, and the upload path up to the network boundary."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest
from huggingface_hub import SpaceCard

from scratchgpt import SpaceArguments, push_space
from scratchgpt.cli import push_space_main
from scratchgpt.hub.push import HubPushError
from scratchgpt.hub.space import MODEL_ENV, write_space
from tests.helpers import run_script_against_a_dead_hub

SPACE, MODEL_REPO = "me/toy-spam-demo", "me/toy-spam"


def test_space_files_load_the_model_repo_with_the_library_beside_them(tmp_path):
    files = dict(write_space(tmp_path, SPACE, MODEL_REPO))
    app = (tmp_path / "app.py").read_text()
    assert f'os.environ.get("{MODEL_ENV}", "{MODEL_REPO}")' in app
    assert "from scratchgpt.app import AppArguments, build_app, launch" in app
    requirements = (tmp_path / "requirements.txt").read_text().split()
    for name in ("gradio", "transformers", "torch", "tiktoken", "huggingface-hub"):
        installed = metadata.version(name).split("+")[0]
        assert f"{name}=={installed}" in requirements  # the versions tested here
    card = SpaceCard.load(tmp_path / "README.md")
    assert (card.data.sdk, card.data.app_file) == ("gradio", "app.py")
    assert card.data.sdk_version == metadata.version("gradio")
    assert card.data.models == [MODEL_REPO]
    for name in (
        "scratchgpt/__init__.py",
        "scratchgpt/app/ui.py",
        "scratchgpt/inference/classify.py",
        "scratchgpt_modeling/modeling_scratchgpt.py",
    ):
        assert name in files  # fmt: skip
    assert not [name for name in files if "__pycache__" in name or name.endswith(".pyc")]
    # The model's code and weights come from the model repo, never from the Space.
    assert not [name for name in files if name.endswith((".safetensors", "config.json"))]


@pytest.mark.slow
def test_dry_run_starts_the_space_app_from_its_own_folder(trained_classifier_dir, capsys):
    code = push_space_main(["--space", SPACE, "--model-repo", MODEL_REPO,
                       "--model", str(trained_classifier_dir), "--dry-run"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"would upload to https://huggingface.co/spaces/{SPACE}" in out
    for name in (
        "README.md",
        "app.py",
        "requirements.txt",
        "scratchgpt/ (",
        "scratchgpt_modeling/",
    ):
        assert f"\n  {name}" in out
    assert f"the Space's app started against {trained_classifier_dir}" in out
    assert "through its API" in out and "dry run: nothing uploaded" in out
    # The app ran on the Space's copy of the library (a temporary folder), not the installed one.
    library = Path(re.search(r"scratchgpt imported from (\S+)\)", out).group(1))
    assert library.name == "scratchgpt" and library.parent.name.startswith("scratchgpt-space-")


@pytest.mark.slow
def test_a_space_whose_app_cannot_start_is_reported(trained_classifier_dir, tmp_path):
    from scratchgpt.hub.space import check_space_app

    write_space(tmp_path, SPACE, MODEL_REPO)
    (tmp_path / "scratchgpt" / "app" / "ui.py").write_text("raise ImportError('broken copy')\n")
    with pytest.raises(HubPushError, match=r"(?s)did not start.*test_a_space.*broken copy"):
        check_space_app(tmp_path, trained_classifier_dir, offline=True)


def test_dry_run_needs_a_local_model_and_ids_are_checked():
    with pytest.raises(ValueError, match="--dry-run is offline: pass --model FOLDER"):
        SpaceArguments(space=SPACE, model_repo=MODEL_REPO, dry_run=True)
    bad = SpaceArguments(space="not a repo id", model_repo=MODEL_REPO, no_app_check=True)
    with pytest.raises(ValueError, match="--space 'not a repo id'"):
        push_space(bad)
    bad = SpaceArguments(space=SPACE, model_repo="user/model/extra", no_app_check=True)
    with pytest.raises(ValueError, match="--model-repo 'user/model/extra'"):
        push_space(bad)


class FakeHubApi:
    """Records what the push asks the Hub for, as ``HfApi`` would receive it."""

    calls: list = []

    def __init__(self, token=None):
        self.calls.append(("token", token))

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        folder = Path(kwargs["folder_path"])
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        self.calls.append(("upload_folder", kwargs["repo_id"], kwargs["repo_type"], files))
        return type("Commit", (), {"commit_url": f"https://huggingface.co/spaces/{SPACE}/c/1"})


def test_push_creates_a_gradio_space_and_uploads_one_commit(monkeypatch):
    monkeypatch.setattr("scratchgpt.hub.space.HfApi", FakeHubApi)
    monkeypatch.setattr("scratchgpt.hub.push.constants.HF_HUB_OFFLINE", False)
    FakeHubApi.calls = []
    args = SpaceArguments(
        space=SPACE, model_repo=MODEL_REPO, token="hf_x", private=True, no_app_check=True
    )
    assert push_space(args) == f"https://huggingface.co/spaces/{SPACE}/c/1"
    token, create, upload = FakeHubApi.calls
    assert token == ("token", "hf_x")
    assert create == (
        "create_repo",
        SPACE,
        {"repo_type": "space", "space_sdk": "gradio", "private": True, "exist_ok": True},
    )
    assert upload[:3] == ("upload_folder", SPACE, "space")
    assert {"app.py", "requirements.txt", "README.md", "scratchgpt/app/ui.py"} <= set(upload[3])


def test_push_refuses_offline_or_without_token(monkeypatch):
    args = SpaceArguments(space=SPACE, model_repo=MODEL_REPO, no_app_check=True)
    monkeypatch.setattr("scratchgpt.hub.push.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(HubPushError, match="HF_HUB_OFFLINE is set"):
        push_space(args)
    monkeypatch.setattr("scratchgpt.hub.push.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("scratchgpt.hub.push.get_token", lambda: None)
    with pytest.raises(HubPushError, match="no Hugging Face token"):
        push_space(args)


def test_real_push_without_network_fails_cleanly(tmp_path):
    args = ["--space", SPACE, "--model-repo", MODEL_REPO, "--no-app-check"]
    proc = run_script_against_a_dead_hub("push_space.py", args, tmp_path / "hf_home")
    assert proc.returncode == 1, proc.stderr
    assert "could not create the Space on http://127.0.0.1:" in proc.stderr
    assert "No files were committed" in proc.stderr
    assert "Traceback" not in proc.stderr
