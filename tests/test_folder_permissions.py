"""Model folders are readable by others, as a plain mkdir/open would leave them.

The atomic save builds each folder in a ``tempfile.mkdtemp`` sibling (mode 0700) and
safetensors >= 0.8 writes its files 0600; renamed into place as they were, a converted or
fine-tuned model could be read by its owner only (a shared cache, a Docker image run as another
user, a web server would all fail).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from scratchgpt.folder import save_model_folder
from scratchgpt.weights.convert import convert
from scratchgpt_modeling.configuration_scratchgpt import ScratchGPTConfig
from scratchgpt_modeling.modeling_scratchgpt import ScratchGPTForSequenceClassification

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_gpt2_tf"


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it after."""
    previous = os.umask(0o022)

    def set_umask(mask: int) -> None:
        os.umask(mask)

    yield set_umask
    os.umask(previous)


def modes(folder: Path) -> dict[str, int]:
    """Permission bits of the folder and everything under it, by relative path."""
    return {
        str(path.relative_to(folder.parent)): stat.S_IMODE(path.stat().st_mode)
        for path in (folder, *folder.rglob("*"))
    }


def expect(folder: Path, dir_mode: int, file_mode: int) -> dict[str, int]:
    return {
        str(path.relative_to(folder.parent)): dir_mode if path.is_dir() else file_mode
        for path in (folder, *folder.rglob("*"))
    }


def test_saved_model_folder_is_0755_and_0644_under_umask_022(tmp_path, umask, bpe_dir):
    umask(0o022)
    torch.manual_seed(0)
    config = ScratchGPTConfig(
        vocab_size=50257, context_length=64, emb_dim=32, n_heads=2, n_layers=2, num_labels=2
    )
    model = ScratchGPTForSequenceClassification(config).eval()
    folder = save_model_folder(
        model, tmp_path / "clf", bpe_dir, extra_files={"metrics.json": "{}"}, max_shard_size="2MB"
    )
    assert len(list(folder.glob("*.safetensors"))) > 1  # sharded: every shard is checked
    assert {"model.safetensors.index.json", "vocab.json", "metrics.json"} <= {
        p.name for p in folder.iterdir()
    }
    assert modes(folder) == expect(folder, 0o755, 0o644)
    # Replacing an existing folder gives the same modes.
    save_model_folder(model, folder, bpe_dir)
    assert modes(folder) == expect(folder, 0o755, 0o644)


def test_converted_folder_follows_the_umask(tmp_path, umask):
    umask(0o022)
    folder = convert(FIXTURE, tmp_path / "out", progress=False)
    assert modes(folder) == expect(folder, 0o755, 0o644)
    # A stricter umask is respected, as save_pretrained's mkdir/open respect it.
    umask(0o027)
    folder = convert(FIXTURE, tmp_path / "private", progress=False)
    assert modes(folder) == expect(folder, 0o750, 0o640)
