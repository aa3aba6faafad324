"""A Gradio Space that demonstrates a model repo (``scripts/push_space.py``).

The Space runs the library's own browser app (``scratchgpt.app``), so a visitor sees what
``scripts/app.py`` shows locally: the same inference code, attribution and card facts.
scratchgpt is not a PyPI package, so the Space carries the library's source beside its
``app.py`` (``scratchgpt/`` and ``scratchgpt_modeling/``, the Python files of the installed
package), and ``requirements.txt`` pins every library it needs to the version installed here,
the one tested. ``app.py`` loads the model repo through the Auto API with
``trust_remote_code=True``: the weights and modeling code come from the model repo, not from
the Space. ``README.md`` holds the Space's front matter (``sdk: gradio`` and its version).

Before uploading, ``check_space_app`` starts the Space's ``app.py`` in a fresh Python process
whose working directory is the Space folder (so ``import scratchgpt`` finds the copy in it, not
the installed library), on a free port of 127.0.0.1, against a local model folder (offline) or
the model repo, and asks its API to classify a message through ``gradio_client``. The push is
``create_repo(repo_type="space", space_sdk="gradio")`` and one ``upload_folder`` commit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from huggingface_hub import HfApi, SpaceCard, SpaceCardData, constants
from huggingface_hub.utils import validate_repo_id
from packaging.requirements import Requirement

import scratchgpt_modeling
from scratchgpt.hub.arguments import SpaceArguments
from scratchgpt.hub.push import HubPushError, human_size, write_token

LIBRARY_ROOT = Path(__file__).resolve().parents[1]  # the installed scratchgpt package
MODEL_ENV = "SCRATCHGPT_MODEL"  # overrides the Space's model repo (the offline check uses it)
APP_CHECK_TIMEOUT_S = 300
SPACE_APP = '''"""A demo of the text classifier {model_repo}, made by scratchgpt's push_space.py.

The page is scratchgpt's browser app (the scratchgpt/ folder beside this file). The model's
weights and code come from the model repo, loaded with trust_remote_code=True.
"""

import os

from scratchgpt.app import AppArguments, build_app, launch

MODEL = os.environ.get("{env}", "{model_repo}")
ARGS = AppArguments(model=MODEL, host="0.0.0.0", port=7860)  # where Spaces expect the app
demo = build_app(ARGS)

if __name__ == "__main__":
    launch(demo, ARGS)
'''
# Runs in a fresh interpreter in the Space folder: argv = [model, port].
APP_CHECK_CODE = """
import json, os, runpy, sys
sys.path.insert(0, os.getcwd())
space = runpy.run_path("app.py", run_name="space_check")
import scratchgpt
from gradio_client import Client
from scratchgpt.app import AppArguments, launch
demo = launch(space["demo"], AppArguments(model=sys.argv[1], port=int(sys.argv[2])), block=False)
try:
    label, _, _ = Client(f"http://127.0.0.1:{sys.argv[2]}/", verbose=False).predict(
        "WIN a free prize now, call 0800 123", api_name="/classify")
finally:
    demo.close()
print("APP_CHECK", json.dumps({"library": scratchgpt.__file__, "label": label}))
"""


def pinned(name: str) -> str:
    """``name==installed version`` (a local build label such as +cpu dropped)."""
    return f"{name}=={metadata.version(name).split('+')[0]}"


def space_requirements() -> list[str]:
    """The library's runtime requirements and its ``app`` extra, pinned to what is installed."""
    names = []
    for line in metadata.requires("scratchgpt") or []:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is None or marker.evaluate({"extra": "app"}):
            names.append(requirement.name)
    if "gradio" not in names:
        raise HubPushError(
            "the installed scratchgpt's metadata has no 'app' extra (an install older than "
            "the app): reinstall with pip install -e '.[app]'"
        )
    return [pinned(name) for name in dict.fromkeys(names)]


def space_readme(space: str, model_repo: str) -> str:
    """The Space's README.md: its front matter (what the Hub builds) and a short body."""
    title = f"{model_repo.split('/')[-1]} demo"
    data = SpaceCardData(
        title=title,
        sdk="gradio",
        sdk_version=metadata.version("gradio"),
        python_version=f"{sys.version_info.major}.{sys.version_info.minor}",
        app_file="app.py",
        license="apache-2.0",
        models=[model_repo],
        tags=["scratchgpt", "text-classification"],
        emoji="📨",
        colorFrom="indigo",
        colorTo="red",
        pinned=False,
        short_description="A from-scratch GPT-2 text classifier: scores and why",
    )
    body = (
        f"# {title}\n\nType a message to see how [{model_repo}](https://huggingface.co/"
        f"{model_repo}) labels it, every class's probability and the words that decided; "
        "upload a .txt or .csv file to label many messages at once.\n\nMade with scratchgpt's "
        "`push_space.py`: the app is scratchgpt's own (`scratchgpt/`), the model is loaded "
        "from its repo with `trust_remote_code=True`.\n"
    )
    return str(SpaceCard.from_template(data, template_str="---\n{{ card_data }}\n---\n\n" + body))


def source_files(root: Path, prefix: str) -> dict[str, Path]:
    """``{path in the Space: file}`` for the ``.py`` files of the package in ``root``."""
    return {
        f"{prefix}/{path.relative_to(root).as_posix()}": path
        for path in sorted(root.rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def write_space(folder: Path, space: str, model_repo: str) -> list[tuple[str, int]]:
    """Write every file of the Space into ``folder``; returns ``(path, size)``, sorted."""
    texts = {
        "app.py": SPACE_APP.format(model_repo=model_repo, env=MODEL_ENV),
        "requirements.txt": "\n".join(space_requirements()) + "\n",
        "README.md": space_readme(space, model_repo),
    }
    for name, text in texts.items():
        (folder / name).write_text(text, encoding="utf-8")
    sources = {
        **source_files(LIBRARY_ROOT, "scratchgpt"),
        **source_files(Path(scratchgpt_modeling.__file__).parent, "scratchgpt_modeling"),
    }
    for name, path in sources.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, folder / name)
    names = sorted([*texts, *sources])
    return [(name, (folder / name).stat().st_size) for name in names]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_space_app(folder: Path, model: str | Path, offline: bool) -> dict:
    """Start the Space's app from ``folder`` in a fresh process against ``model`` and classify a
    message through its API; returns ``{"library": where scratchgpt came from, "label": ...}``."""
    env = {**os.environ, MODEL_ENV: str(model), "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("PYTHONPATH", None)  # the Space's own copy of the library must be what runs
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", APP_CHECK_CODE, str(model), str(free_port())],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
        timeout=APP_CHECK_TIMEOUT_S,
    )
    reports = [line for line in proc.stdout.splitlines() if line.startswith("APP_CHECK ")]
    if proc.returncode != 0 or not reports:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        raise HubPushError(f"the Space's app did not start against {model}:\n{tail}")
    return json.loads(reports[-1].removeprefix("APP_CHECK "))


def check_ids(args: SpaceArguments) -> None:
    for flag, repo_id in (("--space", args.space), ("--model-repo", args.model_repo)):
        try:
            validate_repo_id(repo_id)
        except ValueError as err:
            raise ValueError(f"{flag} {repo_id!r}: {err}") from None
        if repo_id.count("/") != 1:
            raise ValueError(f"{flag} {repo_id!r} must be USER/NAME")


def upload_space(folder: Path, args: SpaceArguments) -> str:
    """Create the Space (gradio SDK) if needed and upload ``folder`` as one commit."""
    api = HfApi(token=write_token(args.token))
    step = "create the Space"
    try:
        api.create_repo(
            args.space, repo_type="space", space_sdk="gradio", private=args.private, exist_ok=True
        )
        step = "upload the Space's files"
        commit = api.upload_folder(
            repo_id=args.space,
            repo_type="space",
            folder_path=folder,
            commit_message=args.commit_message or f"Demo of {args.model_repo} with scratchgpt",
        )
    except Exception as err:  # network/HTTP errors come in many types
        raise HubPushError(
            f"could not {step} on {constants.ENDPOINT} for {args.space!r}: "
            f"{type(err).__name__}: {err}\nNo files were committed: upload_folder sends all "
            "files in one commit, which either lands whole or not at all."
        ) from err
    return commit.commit_url


def push_space(args: SpaceArguments, report: bool = False) -> str:
    """``push_space``: write the Space, start its app (unless ``args.no_app_check``), then
    upload it as one commit; returns the commit URL, or ``""`` for ``args.dry_run``. With
    ``report``, prints the file list and the check as it goes (the script's output)."""
    check_ids(args)
    if args.model is not None and not (args.model / "config.json").is_file():
        raise FileNotFoundError(f"--model {args.model}: not a model folder (no config.json)")
    with tempfile.TemporaryDirectory(prefix="scratchgpt-space-") as tmp:
        folder = Path(tmp)
        files = write_space(folder, args.space, args.model_repo)
        if report:
            print(format_files(files, args.space))
        if not args.no_app_check:
            model = args.model if args.model is not None else args.model_repo
            result = check_space_app(folder, model, offline=args.dry_run)
            if report:
                print(f"the Space's app started against {model} and labelled a message "
                      f"{result['label']['label']!r} through its API (scratchgpt imported "
                      f"from {Path(result['library']).parent})")  # fmt: skip
        if args.dry_run:
            return ""
        return upload_space(folder, args)


def format_files(files: Sequence[tuple[str, int]], space: str) -> str:
    lines = [f"would upload to https://huggingface.co/spaces/{space} ({len(files)} files):"]
    shown = [f for f in files if "/" not in f[0]]  # the library's sources in one line each
    width = max(len(name) for name, _ in shown)
    lines += [f"  {name:<{width}}  {human_size(size):>10}" for name, size in shown]
    for package in ("scratchgpt", "scratchgpt_modeling"):
        inside = [size for name, size in files if name.startswith(package + "/")]
        label = f"{package}/ ({len(inside)} files)"
        lines.append(f"  {label:<{width}}  {human_size(sum(inside)):>10}")
    return "\n".join(lines)
