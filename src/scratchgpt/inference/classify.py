"""Classify texts with a fine-tuned model folder (or Hub repo): fast batched inference.

The book's ``classify_review`` runs one message at a time, padded to a fixed 120 tokens.
``classify_texts`` instead sorts the texts by token count, cuts the sorted list into batches
(so each batch holds messages of similar length), pads each batch only to its own longest
message with an attention mask, and returns the results in the input order. The model pools
the last non-padding token, so padding never changes a prediction. On CPU the linear weights
of a large call are packed once for oneDNN for the whole call (``scratchgpt.inference.prepack``).
``TextClassifier`` holds a loaded model with these settings: the command line, the Python API
and the browser app (``scratchgpt.app``) all classify through it.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import tiktoken
import torch
from tqdm.auto import tqdm

from scratchgpt.data.collate import SortedBatchSampler, right_pad
from scratchgpt.files import (
    BOM,
    UsageError,
    decode_text,
    read_input_bytes,
    resolve_local_model_folder,
)
from scratchgpt.inference.arguments import DEFAULT_BATCH_SIZE, ClassifyArguments
from scratchgpt.inference.light import light_folder_config, load_light_classifier
from scratchgpt.inference.prepack import Prepack, prepacked_linears
from scratchgpt.precision import Precision, resolve_dtype
from scratchgpt.tokenizer import ENDOFTEXT, load_tiktoken

if TYPE_CHECKING:  # transformers' model code loads only where a model goes through it
    from transformers import PreTrainedModel


class TruncationWarning(UserWarning):
    """Some texts were longer than the model's context and lost their tail."""


def resolve_encoding(tokenizer: str | Path | tiktoken.Encoding) -> tiktoken.Encoding:
    """A tiktoken encoding from a folder with GPT-2 BPE files, or the encoding itself."""
    if isinstance(tokenizer, tiktoken.Encoding):
        return tokenizer
    return load_tiktoken(tokenizer)


def tokenize_texts(encoding: tiktoken.Encoding, texts: Sequence[str]) -> list[list[int]]:
    """Token ids per text, uncut; every text must be a non-empty string.

    ``<|endoftext|>`` written in a text becomes the special token, as the transformers
    tokenizer (and so ``pipeline``) does.
    """
    for index, text in enumerate(texts):
        if not isinstance(text, str) or not text:
            raise ValueError(f"text {index} is {text!r}: every text must be a non-empty string")
    return encoding.encode_batch(list(texts), allowed_special={ENDOFTEXT})


def warn_truncated(lengths: Sequence[int], max_length: int) -> None:
    """One ``TruncationWarning`` with the number of texts longer than ``max_length`` tokens."""
    too_long = sum(length > max_length for length in lengths)
    if too_long:
        warnings.warn(
            f"{too_long} of {len(lengths)} texts are longer than {max_length} tokens (longest "
            f"{max(lengths)}) and were truncated to their first {max_length} tokens",
            TruncationWarning,
            stacklevel=4,
        )


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first (memory peaks early)."""
    return list(SortedBatchSampler(lengths, batch_size))


def pad_batch(
    rows: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest row, on ``device``: ``(input_ids, attention_mask)``, (B, T)."""
    input_ids, attention_mask = right_pad(rows, pad_id)
    return input_ids.to(device), attention_mask.to(device)


def label_names(model: PreTrainedModel) -> list[str]:
    """Class names in id order from ``config.id2label``."""
    id2label = model.config.id2label
    return [str(id2label[i]) for i in range(model.config.num_labels)]


def pad_token_id(model: PreTrainedModel, encoding: tiktoken.Encoding) -> int:
    """The config's pad id, else the tokenizer's ``<|endoftext|>`` (GPT-2 has no pad token)."""
    pad = model.config.pad_token_id
    return int(pad) if pad is not None else encoding.eot_token


@torch.inference_mode()
def predict_probabilities(
    model: PreTrainedModel,
    token_ids: Sequence[Sequence[int]],
    pad_id: int,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
    prepack: Prepack = "auto",
) -> torch.Tensor:
    """Class probabilities (N, num_labels), rows in the order of ``token_ids``.

    ``prepack`` runs fp32 CPU linears on pre-packed weights (see ``scratchgpt.inference.prepack``):
    "auto" (default) for calls large enough to repay the packing, where it fits in memory; True
    to insist where supported; False never.
    """
    model.eval()
    device = next(model.parameters()).device
    probs = torch.empty((len(token_ids), model.config.num_labels), dtype=torch.float32)
    lengths = [len(row) for row in token_ids]
    batches = length_sorted_batches(lengths, batch_size)
    with prepacked_linears(model, prepack, tokens=sum(lengths)):
        for batch in tqdm(batches, desc="classify", unit="batch", disable=not progress):
            input_ids, attention_mask = pad_batch([token_ids[i] for i in batch], pad_id, device)
            logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
            probs[batch] = logits.float().softmax(dim=-1).cpu()
    return probs


class TextClassifier:
    """A loaded classifier with its tokenizer and batching settings: the one inference path of
    ``classify.py``, the Python ``classify``, the browser app (``scratchgpt.app``) and its Space.

    ``classify`` tokenizes (cutting texts to ``max_length`` tokens), runs length-sorted batches
    padded per batch (``predict_probabilities``, prepacked on CPU) and returns one result dict
    per text in input order. ``tokenizer`` is a folder with the GPT-2 BPE files (the model
    folder itself) or a ``tiktoken.Encoding``; ``max_length`` defaults to, and may not exceed,
    the model's context length.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: str | Path | tiktoken.Encoding,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_length: int | None = None,
        prepack: Prepack = "auto",
    ) -> None:
        context = int(model.config.context_length)
        if max_length is not None and not 1 <= max_length <= context:
            raise ValueError(
                f"max_length must be in 1..{context} (the context length), got {max_length}"
            )
        self.model = model.eval()
        self.encoding = resolve_encoding(tokenizer)
        self.batch_size = batch_size
        self.max_length = max_length or context
        self.prepack = prepack
        self.labels = label_names(model)
        self.pad_id = pad_token_id(model, self.encoding)

    @contextmanager
    def packed(self) -> Iterator[bool]:
        """Pack the linear weights once for every call inside the block (a server answering
        one message at a time would otherwise repack per message); yields whether it did."""
        with prepacked_linears(self.model, self.prepack) as packed:
            saved, self.prepack = self.prepack, False  # already packed: calls must not repack
            try:
                yield packed
            finally:
                self.prepack = saved

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Uncut token ids per text (``ValueError`` for an empty text)."""
        return tokenize_texts(self.encoding, texts)

    def probabilities(
        self,
        token_ids: Sequence[Sequence[int]],
        progress: bool = False,
        batch_size: int | None = None,
    ) -> torch.Tensor:
        """Class probabilities (N, num_labels) of already cut token ids, in their order."""
        return predict_probabilities(
            self.model,
            token_ids,
            self.pad_id,
            batch_size or self.batch_size,
            progress,
            self.prepack,
        )

    def classify(
        self, texts: Sequence[str], progress: bool = False, warn: bool = True
    ) -> list[dict]:
        """One result per text, in input order (see ``classify_texts``); texts longer than
        ``max_length`` tokens are cut, with one ``TruncationWarning`` unless ``warn`` is off
        (a caller that reports ``num_tokens`` itself)."""
        if not texts:
            return []
        ids = self.tokenize(texts)
        lengths = [len(row) for row in ids]
        if warn:
            warn_truncated(lengths, self.max_length)
        probs = self.probabilities([row[: self.max_length] for row in ids], progress)
        return [
            self.result(text, row, length)
            for text, row, length in zip(texts, probs.tolist(), lengths, strict=True)
        ]

    def result(self, text: str, probs: Sequence[float], num_tokens: int) -> dict:
        best = max(range(len(probs)), key=probs.__getitem__)
        return {
            "text": text,
            "label": self.labels[best],
            "label_id": best,
            "score": probs[best],
            "scores": dict(zip(self.labels, probs, strict=True)),
            "num_tokens": num_tokens,
        }


def classify_texts(
    model: PreTrainedModel,
    tokenizer: str | Path | tiktoken.Encoding,
    texts: Sequence[str],
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_length: int | None = None,
    progress: bool = False,
    prepack: Prepack = "auto",
) -> list[dict]:
    """Classify ``texts``; one dict per text, in input order.

    Each result is ``{"text", "label", "label_id", "score", "scores": {label: probability},
    "num_tokens"}`` where ``score`` is the probability of the predicted label and
    ``num_tokens`` the text's length in tokens before any truncation. ``tokenizer`` is a
    folder with the GPT-2 BPE files (the model folder itself) or a ``tiktoken.Encoding``.
    ``max_length`` (default and maximum: the model's context length) truncates longer texts,
    with a ``TruncationWarning`` saying how many. ``prepack`` as in ``predict_probabilities``.
    """
    classifier = TextClassifier(model, tokenizer, batch_size, max_length, prepack)
    return classifier.classify(texts, progress)


class HubDownloadError(RuntimeError):
    """A model repo could not be fetched from the Hugging Face Hub."""


def resolve_model_folder(
    path_or_repo: str | Path, revision: str | None = None, token: str | None = None
) -> Path:
    """A local model folder as is, or a Hub repo id downloaded into the Hub cache."""
    path = Path(path_or_repo)
    if path.exists():
        return resolve_local_model_folder(path)  # a folder, with a valid config.json
    name = str(path_or_repo)
    if name.count("/") != 1 or name.startswith((".", "/")):
        raise FileNotFoundError(
            f"{name!r} is neither an existing model folder nor a Hub repo id (USER/NAME)"
        )
    return _download_repo(name, revision, token)


def _download_repo(repo_id: str, revision: str | None, token: str | None) -> Path:
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, revision=revision, token=token))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as err:
        raise HubDownloadError(
            f"could not download model repo {repo_id!r} (revision {revision or 'main'}) from "
            f"{constants.ENDPOINT}: {type(err).__name__}: {err}. Offline, pass a local model "
            "folder instead; a private repo needs --token or `hf auth login`."
        ) from err


def load_with_folder_code(auto_class: type, folder: str | Path) -> PreTrainedModel:
    """``auto_class.from_pretrained(folder, trust_remote_code=True)`` after
    :func:`scratchgpt.folder.check_folder_weights`."""
    from scratchgpt.folder import check_folder_weights  # transformers loads here anyway

    config = check_folder_weights(auto_class, folder)
    return auto_class.from_pretrained(folder, config=config, trust_remote_code=True)


def load_classifier(
    path_or_repo: str | Path,
    revision: str | None = None,
    token: str | None = None,
    device: str | torch.device | None = None,
    dtype: str | None = None,
) -> tuple[PreTrainedModel, Path]:
    """Load a classifier through the Auto API with the folder's own code (trust_remote_code).

    Returns ``(model, folder)``; ``folder`` also holds the tokenizer files for
    ``classify_texts``. A repo id is downloaded (whole snapshot) from the Hub first. ``dtype``
    ("auto", "float32", "bfloat16"; see ``scratchgpt.precision``) casts the weights for
    scoring; ``None`` keeps the saved fp32, as training and peft want.
    """
    from transformers import AutoModelForSequenceClassification

    folder = resolve_model_folder(path_or_repo, revision, token)
    model = load_with_folder_code(AutoModelForSequenceClassification, folder)
    if device is not None:
        model.to(device)
    if dtype is not None:
        cast_for_inference(model, dtype, device)
    return model.eval(), folder


def load_for_inference(
    path_or_repo: str | Path,
    revision: str | None = None,
    token: str | None = None,
    device: str | torch.device | None = None,
    dtype: str = "auto",
) -> tuple[torch.nn.Module, Path]:
    """:func:`load_classifier`'s model, or its torch-only copy where that computes the same
    (``scratchgpt.inference.light``): seconds faster to start, as transformers is not imported.
    Its weights are cast to ``dtype`` (default "auto": bf16 where the hardware runs it fast).
    For scoring only; use ``load_classifier`` for a ``PreTrainedModel`` (training, peft, ...)."""
    folder = resolve_model_folder(path_or_repo, revision, token)
    config = light_folder_config(folder)
    if config is None:  # transformers' path validates config.json and names a bad field
        return load_classifier(folder, device=device, dtype=dtype)
    model = load_light_classifier(folder, config, device)
    cast_for_inference(model, dtype, device)
    return model, folder


def cast_for_inference(
    model: torch.nn.Module, dtype: str, device: str | torch.device | None = None
) -> Precision:
    """Cast the weights once to the resolved ``dtype`` (no per-call autocast) and return the
    choice; ``model.precision`` keeps it for the records (the app's facts, evaluate's
    metrics.json)."""
    precision = resolve_dtype(dtype, device)
    if next(model.parameters()).dtype != precision.dtype:
        model.to(precision.dtype)
    model.precision = precision
    return precision


def model_precision(model: torch.nn.Module) -> Precision:
    """How ``model`` scores: the choice :func:`cast_for_inference` made, else its weights'
    dtype as given."""
    given = getattr(model, "precision", None)
    if isinstance(given, Precision):
        return given
    return Precision(next(model.parameters()).dtype, "as loaded")


# ---------------------------------------------------------------- the classify command


def decode_lines(data: bytes, origin: str) -> list[str]:
    """UTF-8 ``data`` (a byte-order mark dropped) split into lines; a byte that is not UTF-8
    raises ``InputFileError`` naming ``origin``, the line and the column."""
    return decode_text(data, origin).splitlines()


def read_input_texts(
    texts: Sequence[str], input: Path | None, stdin: TextIO
) -> tuple[list[str], list[int]]:
    """Texts from arguments, ``--input`` (any readable file, device or pipe; ``-`` is stdin)
    or stdin, and the 1-based line numbers skipped as empty."""
    if texts and input:
        raise UsageError("give texts as arguments or --input FILE, not both")
    if texts:
        lines = [text.removeprefix(BOM) for text in texts]
    elif input and str(input) != "-":
        lines = decode_lines(read_input_bytes(input, f"--input {input}"), f"--input {input}")
    elif input or not stdin.isatty():
        buffer = getattr(stdin, "buffer", None)  # bytes, so a bad byte has a line number
        if buffer is not None:
            lines = decode_lines(buffer.read(), "stdin")
        else:
            lines = stdin.read().removeprefix(BOM).splitlines()
    else:
        raise UsageError("no texts: pass them as arguments, with --input FILE, or on stdin")
    empty = [number for number, line in enumerate(lines, start=1) if not line.strip()]
    texts = [line for line in lines if line.strip()]
    if not texts:
        raise UsageError(f"no text to classify: all {len(lines)} input line(s) are empty")
    return texts, empty


def classify(
    args: ClassifyArguments, texts: Sequence[str] = (), stdin: TextIO | None = None
) -> list[dict]:
    """``classify``: label ``texts`` (else the lines of ``args.input``, else ``stdin``) with
    ``args.model``; one dict per text (``text``, ``label``, ``score``, ``scores``), input order."""
    texts, empty = read_input_texts(texts, args.input, stdin or sys.stdin)
    model, folder = load_for_inference(
        args.model, args.revision, args.token, args.device, args.dtype
    )
    print(model_precision(model).describe(), file=sys.stderr)
    if empty:
        shown = ", ".join(map(str, empty[:10])) + (" ..." if len(empty) > 10 else "")
        print(f"skipped {len(empty)} empty line(s): {shown}", file=sys.stderr)
    return classify_texts(
        model,
        folder,
        texts,
        args.batch_size,
        args.max_length,
        progress=len(texts) > 1000,
        prepack=args.prepack,
    )


def format_results_table(results: Sequence[dict], text_width: int = 60) -> str:
    """Aligned table: index, label, score, each class probability, start of the text."""
    names = list(results[0]["scores"])
    label_width = max(5, *(len(n) for n in names))
    header = f"{'#':>4}  {'label':<{label_width}}  " + "  ".join(f"{n:>8}" for n in names)
    lines = [header + "  text"]
    for index, row in enumerate(results, start=1):
        text = (
            row["text"] if len(row["text"]) <= text_width else row["text"][: text_width - 1] + "…"
        )
        probs = "  ".join(f"{row['scores'][n]:8.4f}" for n in names)
        lines.append(f"{index:>4}  {row['label']:<{label_width}}  {probs}  {text}")
    return "\n".join(lines)
