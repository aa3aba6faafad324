"""GPT-2's byte-pair encoding from a model folder, as tiktoken and as a transformers tokenizer.

A model folder carries ``vocab.json`` + ``merges.txt`` (OpenAI ships the same files as
``encoder.json`` + ``vocab.bpe``). From them we build:

- a ``tiktoken.Encoding``: the fast path used to tokenize training data;
- a transformers ``GPT2Tokenizer`` with ``<|endoftext|>`` as pad token: what ``pipeline`` and
  ``AutoTokenizer`` use once the files are saved next to the model.

Both give identical ids (tested on all SMS messages). Nothing here touches the network:
tiktoken's own ``get_encoding("gpt2")`` would download the vocabulary, so we do not call it.
"""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import tiktoken
from transformers import GPT2Tokenizer

ENDOFTEXT = "<|endoftext|>"
VOCAB_FILE = "vocab.json"
MERGES_FILE = "merges.txt"
# OpenAI's names for the same two files, in their checkpoint folders.
OPENAI_VOCAB_FILE = "encoder.json"
OPENAI_MERGES_FILE = "vocab.bpe"
# tiktoken's pre-tokenization pattern for "gpt2" (tiktoken_ext.openai_public.r50k_pat_str).
GPT2_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)


def find_bpe_files(folder: str | Path) -> tuple[Path, Path]:
    """Return ``(vocab, merges)`` paths in ``folder``, under Hugging Face or OpenAI names."""
    folder = Path(folder)
    for vocab_name, merges_name in (
        (VOCAB_FILE, MERGES_FILE),
        (OPENAI_VOCAB_FILE, OPENAI_MERGES_FILE),
    ):
        vocab, merges = folder / vocab_name, folder / merges_name
        if vocab.is_file() and merges.is_file():
            return vocab, merges
    raise FileNotFoundError(
        f"{folder} has no GPT-2 tokenizer files: expected {VOCAB_FILE} + {MERGES_FILE} "
        f"(or OpenAI's {OPENAI_VOCAB_FILE} + {OPENAI_MERGES_FILE})"
    )


@functools.lru_cache(maxsize=1)
def _unicode_to_byte() -> dict[str, int]:
    """Invert GPT-2's byte-to-printable-unicode alphabet used in ``vocab.json``."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += list(range(ord("®"), ord("ÿ") + 1))
    mapping = {chr(b): b for b in printable}
    shift = 0
    for b in range(256):
        if b not in printable:
            mapping[chr(256 + shift)] = b
            shift += 1
    return mapping


def _read_vocab(vocab_file: Path) -> dict[str, int]:
    try:
        vocab = json.loads(vocab_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{vocab_file}: not a JSON token->id map ({err})") from err
    if not isinstance(vocab, dict) or ENDOFTEXT not in vocab:
        raise ValueError(f"{vocab_file}: a GPT-2 vocabulary must map {ENDOFTEXT!r} to an id")
    return vocab


def _read_merges(merges_file: Path) -> list[tuple[str, str]]:
    lines = merges_file.read_text(encoding="utf-8").splitlines()
    body = lines[1:] if lines and lines[0].startswith("#version") else lines
    merges = []
    for number, line in enumerate(body, start=len(lines) - len(body) + 1):
        if not line:
            continue
        pair = line.split(" ")
        if len(pair) != 2:
            raise ValueError(f"{merges_file}:{number}: expected two tokens, got {line!r}")
        merges.append((pair[0], pair[1]))
    return merges


@functools.lru_cache(maxsize=4)
def _tiktoken_cached(vocab_file: str, mtime_ns: int) -> tiktoken.Encoding:
    vocab = _read_vocab(Path(vocab_file))
    to_byte = _unicode_to_byte()
    # GPT-2's merge ranks equal its token ids, so the vocabulary alone defines the encoding.
    ranks = {
        bytes(to_byte[ch] for ch in token): idx
        for token, idx in vocab.items()
        if token != ENDOFTEXT
    }
    return tiktoken.Encoding(
        name=f"gpt2@{vocab_file}",
        pat_str=GPT2_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={ENDOFTEXT: vocab[ENDOFTEXT]},
    )


def load_tiktoken(folder: str | Path) -> tiktoken.Encoding:
    """Build the tiktoken encoding for a folder's vocabulary (cached per file version)."""
    vocab_file, _ = find_bpe_files(folder)
    resolved = vocab_file.resolve()
    return _tiktoken_cached(str(resolved), resolved.stat().st_mtime_ns)


def load_hf_tokenizer(folder: str | Path, model_max_length: int = 1024) -> GPT2Tokenizer:
    """A transformers GPT-2 tokenizer from the folder's BPE files, padding with ``<|endoftext|>``.

    Built from in-memory vocab/merges: ``GPT2Tokenizer(vocab_file=...)`` silently yields an
    empty tokenizer in transformers 5.
    """
    vocab_file, merges_file = find_bpe_files(folder)
    return GPT2Tokenizer(
        vocab=_read_vocab(vocab_file),
        merges=_read_merges(merges_file),
        pad_token=ENDOFTEXT,
        model_max_length=model_max_length,
    )


def save_tokenizer(
    source_folder: str | Path, output_dir: str | Path, model_max_length: int
) -> None:
    """Write the tokenizer into a model folder: the BPE files under Hugging Face names, plus
    ``tokenizer.json``/``tokenizer_config.json`` so ``AutoTokenizer.from_pretrained`` works offline.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    vocab_file, merges_file = find_bpe_files(source_folder)
    if vocab_file.resolve() != (output_dir / VOCAB_FILE).resolve():
        shutil.copyfile(vocab_file, output_dir / VOCAB_FILE)
        shutil.copyfile(merges_file, output_dir / MERGES_FILE)
    load_hf_tokenizer(output_dir, model_max_length).save_pretrained(output_dir)
