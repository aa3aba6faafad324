"""GPT-2's byte-pair encoding from a model folder, as tiktoken and as a transformers tokenizer.

A model folder carries ``vocab.json`` + ``merges.txt`` (OpenAI ships the same files as
``encoder.json`` + ``vocab.bpe``; a transformers 5 ``save_pretrained`` writes only
``tokenizer.json``, whose ``model`` section holds the same vocabulary and merges, read here with
the ``tokenizers`` library). From them we build:

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
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import tiktoken
from tokenizers import Tokenizer, models, pre_tokenizers

if TYPE_CHECKING:  # importing transformers costs ~1 s that classifying with tiktoken skips
    from transformers import GPT2Tokenizer

ENDOFTEXT = "<|endoftext|>"
VOCAB_FILE = "vocab.json"
MERGES_FILE = "merges.txt"
# OpenAI's names for the same two files, in their checkpoint folders.
OPENAI_VOCAB_FILE = "encoder.json"
OPENAI_MERGES_FILE = "vocab.bpe"
# transformers 5's only tokenizer file: the vocabulary and merges sit in its "model" section.
TOKENIZER_FILE = "tokenizer.json"
EXPECTED_FILES = (
    f"{VOCAB_FILE} + {MERGES_FILE}, {TOKENIZER_FILE}, "
    f"or OpenAI's {OPENAI_VOCAB_FILE} + {OPENAI_MERGES_FILE}"
)
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
    raise FileNotFoundError(missing_tokenizer_message(folder))


def find_tokenizer_files(folder: str | Path) -> tuple[Path, ...]:
    """The files holding ``folder``'s GPT-2 BPE: ``(vocab, merges)`` as :func:`find_bpe_files`
    finds them, else ``(tokenizer.json,)``. ``FileNotFoundError`` names what is missing."""
    folder = Path(folder)
    try:
        return find_bpe_files(folder)
    except FileNotFoundError:
        if (folder / TOKENIZER_FILE).is_file():
            return (folder / TOKENIZER_FILE,)
        raise


def tokenizer_files_present(folder: str | Path) -> list[str]:
    """Which of the tokenizer file names ``folder`` holds (complete set or not)."""
    names = (VOCAB_FILE, MERGES_FILE, TOKENIZER_FILE, OPENAI_VOCAB_FILE, OPENAI_MERGES_FILE)
    return [name for name in names if (Path(folder) / name).is_file()]


def missing_tokenizer_message(folder: str | Path) -> str:
    """``folder`` and what it lacks, for errors."""
    folder = Path(folder)
    if not folder.is_dir():
        found = "the folder does not exist"
    elif present := tokenizer_files_present(folder):
        found = f"it has only {', '.join(present)}"
    else:
        found = "it has none of them"
    return f"{folder} has no GPT-2 tokenizer files: expected {EXPECTED_FILES}; {found}"


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
        vocab = json.loads(vocab_file.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{vocab_file}: not a JSON token->id map ({err})") from err
    return _checked_vocab(vocab, vocab_file)


def _checked_vocab(vocab: object, origin: Path) -> dict[str, int]:
    if not isinstance(vocab, dict) or ENDOFTEXT not in vocab:
        raise ValueError(f"{origin}: a GPT-2 vocabulary must map {ENDOFTEXT!r} to an id")
    return vocab


def _read_merges(merges_file: Path) -> list[tuple[str, str]]:
    lines = merges_file.read_text(encoding="utf-8-sig").splitlines()
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


def _byte_level_bpe(tokenizer_file: Path) -> Tokenizer:
    """``tokenizer.json`` parsed by the ``tokenizers`` library, checked to be GPT-2's kind.

    The folder we write rebuilds GPT-2's tokenizer from the vocabulary and merges alone, so a
    file that differs elsewhere (a normalizer, a prefix space, other pre-tokenization, tokens
    added outside the vocabulary) would tokenize differently: it is refused, not approximated.
    """
    try:
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
    except Exception as err:  # the Rust parser raises a bare Exception
        raise ValueError(f"{tokenizer_file}: not a readable tokenizers file ({err})") from err
    pre = tokenizer.pre_tokenizer
    problems = []
    if not isinstance(tokenizer.model, models.BPE):
        problems.append(f"its model is {type(tokenizer.model).__name__}, not BPE")
    if tokenizer.normalizer is not None:
        problems.append(f"it has a normalizer ({tokenizer.normalizer})")
    if not isinstance(pre, pre_tokenizers.ByteLevel) or pre.add_prefix_space or not pre.use_regex:
        problems.append(f"its pre-tokenizer {pre} is not ByteLevel(add_prefix_space=False)")
    vocab = tokenizer.get_vocab(with_added_tokens=False)
    extra = [
        token.content
        for token in tokenizer.get_added_tokens_decoder().values()
        if vocab.get(token.content) is None
    ]
    if extra:
        problems.append(f"it adds tokens outside the BPE vocabulary: {extra[:5]}")
    if problems:
        raise ValueError(
            f"{tokenizer_file} is not GPT-2's byte-level BPE tokenizer: {'; '.join(problems)}"
        )
    _checked_vocab(vocab, tokenizer_file)
    return tokenizer


@functools.lru_cache(maxsize=4)
def _bpe_from_tokenizer_json(path: str, mtime_ns: int) -> tuple[dict, list]:
    """(vocab, merges) of a ``tokenizer.json``: the BPE model saves them as vocab.json and
    merges.txt, read back like any folder's (tokenizers has no getter for the merges)."""
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file, merges_file = _byte_level_bpe(Path(path)).model.save(tmp)
        return _read_vocab(Path(vocab_file)), _read_merges(Path(merges_file))


def read_bpe(folder: str | Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The folder's GPT-2 ``(vocabulary, merges)``, from whichever files it has."""
    return _read_bpe_files(find_tokenizer_files(folder))


def _read_bpe_files(files: tuple[Path, ...]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    if len(files) == 2:
        return _read_vocab(files[0]), _read_merges(files[1])
    resolved = files[0].resolve()
    vocab, merges = _bpe_from_tokenizer_json(str(resolved), resolved.stat().st_mtime_ns)
    return dict(vocab), list(merges)


@functools.lru_cache(maxsize=4)
def _tiktoken_cached(files: tuple[str, ...], mtime_ns: int) -> tiktoken.Encoding:
    paths = tuple(map(Path, files))
    # The vocabulary is the first of two files (vocab.json, encoder.json): skip the merges.
    vocab = _read_vocab(paths[0]) if len(paths) == 2 else _read_bpe_files(paths)[0]
    # Each printable stand-in becomes the character whose code point is its byte, so latin-1
    # turns a token into its bytes in C (10x faster than a byte at a time: classify starts sooner).
    to_byte = str.maketrans({ch: chr(b) for ch, b in _unicode_to_byte().items()})
    # GPT-2's merge ranks equal its token ids, so the vocabulary alone defines the encoding.
    ranks = {
        token.translate(to_byte).encode("latin-1"): idx
        for token, idx in vocab.items()
        if token != ENDOFTEXT
    }
    return tiktoken.Encoding(
        name=f"gpt2@{files[0]}",
        pat_str=GPT2_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={ENDOFTEXT: vocab[ENDOFTEXT]},
    )


def load_tiktoken(folder: str | Path) -> tiktoken.Encoding:
    """Build the tiktoken encoding for a folder's vocabulary (cached per file version)."""
    files = tuple(path.resolve() for path in find_tokenizer_files(folder))
    return _tiktoken_cached(tuple(map(str, files)), files[0].stat().st_mtime_ns)


def load_hf_tokenizer(folder: str | Path, model_max_length: int = 1024) -> GPT2Tokenizer:
    """A transformers GPT-2 tokenizer from the folder's BPE, padding with ``<|endoftext|>``.

    Built from in-memory vocab/merges: ``GPT2Tokenizer(vocab_file=...)`` silently yields an
    empty tokenizer in transformers 5.
    """
    from transformers import GPT2Tokenizer

    vocab, merges = read_bpe(folder)
    return GPT2Tokenizer(
        vocab=vocab,
        merges=merges,
        pad_token=ENDOFTEXT,
        model_max_length=model_max_length,
    )


def save_tokenizer(
    source_folder: str | Path, output_dir: str | Path, model_max_length: int
) -> None:
    """Write the tokenizer into a model folder: the BPE files under Hugging Face names, plus
    ``tokenizer.json``/``tokenizer_config.json`` so ``AutoTokenizer.from_pretrained`` works offline.

    A source with only ``tokenizer.json`` (transformers 5) has its BPE model saved as
    ``vocab.json`` + ``merges.txt`` by the ``tokenizers`` library.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    files = find_tokenizer_files(source_folder)
    if len(files) == 1:
        _byte_level_bpe(files[0]).model.save(str(output_dir))
    elif files[0].resolve() != (output_dir / VOCAB_FILE).resolve():
        vocab_file, merges_file = files
        shutil.copyfile(vocab_file, output_dir / VOCAB_FILE)
        shutil.copyfile(merges_file, output_dir / MERGES_FILE)
    load_hf_tokenizer(output_dir, model_max_length).save_pretrained(output_dir)
