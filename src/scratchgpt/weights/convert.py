"""Convert pretrained GPT-2 weights into scratchgpt model folders.

The sources (OpenAI TensorFlow checkpoints, transformers GPT-2 folders, the book's ``.pth``
state_dicts) are read and shape-checked by :mod:`scratchgpt.weights.sources`; this module builds
the config and the model from them (on the meta device, so weights are not allocated twice)
and writes the folder with :func:`scratchgpt.folder.save_model_folder`, into a temporary
sibling renamed when complete. It also fetches and caches OpenAI's checkpoints for the
trainer (``ensure_pretrained_folder``) and holds the command line of
``scripts/convert_openai_checkpoint.py``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import torch
from transformers import PreTrainedModel

from scratchgpt.download import DownloadError, download_openai_gpt2
from scratchgpt.files import check_output_dir, tree_size
from scratchgpt.folder import (
    DEFAULT_MAX_SHARD_SIZE,
    TASK_CLASSES,
    Task,
    is_model_folder,
    load_model_folder,
    save_model_folder,
)
from scratchgpt.paths import cache_dir as default_cache_dir
from scratchgpt.paths import gpt2_bpe_dir
from scratchgpt.tokenizer import (
    ENDOFTEXT,
    EXPECTED_FILES,
    find_tokenizer_files,
    load_tiktoken,
    missing_tokenizer_message,
    read_bpe,
    tokenizer_files_present,
)
from scratchgpt.weights.arguments import SANITY_PROMPT, ConvertArguments
from scratchgpt.weights.sources import (
    SIZE_TO_PRESET,
    ConversionError,
    SourceFormat,
    SourceWeights,
    detect_format,  # noqa: F401  (part of the conversion API: scratchgpt.weights.convert.detect_format)
    read_source,
)
from scratchgpt_modeling.configuration_scratchgpt import PRESETS, SCRATCH_PRESETS, ScratchGPTConfig
from scratchgpt_modeling.modeling_scratchgpt import (
    ScratchGPTForCausalLM,
    ScratchGPTForSequenceClassification,
)

# --- model and folder -----------------------------------------------------------------------


def _label_names(
    num_labels: int | None, labels: list[str] | None, source_head: int | None
) -> dict[int, str] | int | None:
    """Resolve --num-labels/--labels against a fine-tuned head; ``None`` means a language model."""
    if labels is not None and num_labels is not None and len(labels) != num_labels:
        raise ConversionError(
            f"--labels names {len(labels)} labels but --num-labels is {num_labels}"
        )
    wanted = len(labels) if labels is not None else num_labels
    if source_head is not None and wanted is not None and wanted != source_head:
        raise ConversionError(
            f"the source is a classifier with {source_head} outputs; --num-labels/--labels ask "
            f"for {wanted}"
        )
    if wanted is not None and wanted < 1:
        raise ConversionError(f"--num-labels must be at least 1, got {wanted}")
    if labels is not None:
        return dict(enumerate(labels))
    return wanted if wanted is not None else source_head


def _endoftext_id(tokenizer_dir: Path, vocab_size: int) -> int:
    vocab_file = find_tokenizer_files(tokenizer_dir)[0]
    vocab, _ = read_bpe(tokenizer_dir)
    if len(vocab) > vocab_size or ENDOFTEXT not in vocab:
        raise ConversionError(
            f"tokenizer {vocab_file} has {len(vocab)} tokens (needs {ENDOFTEXT!r}), more than the "
            f"model's vocab_size {vocab_size}; pass the matching files with --tokenizer-dir"
        )
    return vocab[ENDOFTEXT]


def _tokenizer_dir(source: Path, weights: SourceWeights, tokenizer_dir: Path | None) -> Path:
    """--tokenizer-dir, else the source's own files, else the shared GPT-2 files.

    A source folder with an incomplete set of tokenizer files is an error rather than a
    silent switch to GPT-2's vocabulary; so is a missing fallback. Both messages name the
    folder and what it lacks.
    """
    if tokenizer_dir is not None:
        return tokenizer_dir
    if weights.tokenizer_dir is not None:
        return weights.tokenizer_dir
    if source.is_dir() and tokenizer_files_present(source):
        raise ConversionError(f"{missing_tokenizer_message(source)}; or pass --tokenizer-dir")
    fallback = gpt2_bpe_dir()
    try:
        find_tokenizer_files(fallback)
    except FileNotFoundError:
        raise ConversionError(
            f"{source} has no tokenizer files (expected {EXPECTED_FILES}) and the default GPT-2 "
            f"files are missing too ({missing_tokenizer_message(fallback)}); pass --tokenizer-dir"
        ) from None
    return fallback


def build_config(
    weights: SourceWeights,
    tokenizer_dir: Path,
    num_labels: int | None = None,
    labels: list[str] | None = None,
) -> ScratchGPTConfig:
    """The scratchgpt config for ``weights``; ``num_labels`` set means a classifier."""
    eot = _endoftext_id(tokenizer_dir, int(weights.arch["vocab_size"]))
    head = weights.classifier[0].shape[0] if weights.classifier is not None else None
    if labels is None and num_labels is None and weights.id2label:
        labels = [weights.id2label[i] for i in sorted(weights.id2label)]
    resolved = _label_names(num_labels, labels, head)
    extra: dict = {}
    if isinstance(resolved, dict):
        extra = {"id2label": resolved, "label2id": {v: k for k, v in resolved.items()}}
    elif resolved is not None:
        extra = {"num_labels": resolved}
    return ScratchGPTConfig(
        **weights.arch,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        tie_word_embeddings=weights.out_head is None,
        **extra,
    )


def _new_head(config: ScratchGPTConfig, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """GPT-2's init for a fresh linear head (normal(0, initializer_range), zero bias), seeded."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(config.num_labels, config.emb_dim, generator=generator)
    return weight * config.initializer_range, torch.zeros(config.num_labels)


def assemble_model(
    weights: SourceWeights, config: ScratchGPTConfig, classifier: bool, seed: int = 123
) -> ScratchGPTForCausalLM | ScratchGPTForSequenceClassification:
    """Put the converted tensors into a model without a throwaway random initialisation."""
    cls = ScratchGPTForSequenceClassification if classifier else ScratchGPTForCausalLM
    with torch.device("meta"):  # parameters get their tensors from the state below
        model = cls(config)
    state = {f"gpt.{key}": value for key, value in weights.backbone.items()}
    if classifier:
        head = weights.classifier or _new_head(config, seed)
        state["classifier.weight"], state["classifier.bias"] = head
    elif weights.out_head is not None:
        state["out_head.weight"] = weights.out_head
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    tied = not classifier and weights.out_head is None
    if unexpected or set(missing) != ({"out_head.weight"} if tied else set()):
        raise RuntimeError(f"converter bug: missing {missing}, unexpected {unexpected}")
    if tied:
        model.tie_weights()
    still_meta = [name for name, p in model.named_parameters() if p.is_meta]
    if still_meta:
        raise RuntimeError(f"converter bug: parameters left without weights: {still_meta}")
    return model.eval()


def convert_model(
    source: str | os.PathLike[str],
    *,
    source_format: SourceFormat | None = None,
    num_labels: int | None = None,
    labels: list[str] | None = None,
    n_heads: int | None = None,
    tokenizer_dir: str | os.PathLike[str] | None = None,
    seed: int = 123,
    progress: bool = True,
) -> tuple[ScratchGPTForCausalLM | ScratchGPTForSequenceClassification, Path]:
    """Read ``source`` into an in-memory model; return it with its tokenizer folder."""
    weights = read_source(source, source_format, n_heads=n_heads, progress=progress)
    tok_dir = _tokenizer_dir(Path(source), weights, Path(tokenizer_dir) if tokenizer_dir else None)
    config = build_config(weights, tok_dir, num_labels, labels)
    classifier = weights.classifier is not None or num_labels is not None or labels is not None
    return assemble_model(weights, config, classifier, seed), tok_dir


def convert(
    source: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    max_shard_size: str | int = DEFAULT_MAX_SHARD_SIZE,
    **kwargs,
) -> Path:
    """Convert ``source`` into the model folder ``output_dir`` (written atomically).

    ``kwargs`` are those of :func:`convert_model`.
    """
    _check_output(Path(source), Path(output_dir))
    model, tok_dir = convert_model(source, **kwargs)
    return save_model_folder(model, output_dir, tok_dir, max_shard_size=max_shard_size)


def _check_output(source: Path, output_dir: Path) -> None:
    src, out = source.resolve(), output_dir.resolve()
    if src == out or out in src.parents:
        raise ConversionError(
            f"--output-dir {output_dir} would replace the input {source}; choose another folder"
        )
    # The converted weights are about as large as the input's (fp32 either way).
    need = tree_size(source) if source.exists() else 0
    check_output_dir(output_dir, "--output-dir", need, replaces="config.json")


def ensure_pretrained_folder(preset: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """The converted model folder of an OpenAI preset, downloading and converting it once."""
    sizes = {name: size for size, name in SIZE_TO_PRESET.items()}
    if preset not in sizes:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(sizes)}")
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = root / preset
    if is_model_folder(folder):
        return folder
    checkpoint = download_openai_gpt2(sizes[preset], root / "openai" / sizes[preset])
    return convert(checkpoint, folder, source_format="openai")


def build_model(
    model: str | Path,
    *,
    task: Task = "sequence-classification",
    init: Literal["pretrained", "random"] = "pretrained",
    seed: int = 123,
    **config_overrides,
) -> PreTrainedModel:
    """A model from a preset name (``gpt2-small`` ...) or a model folder.

    ``init="random"`` builds a preset's shape with fresh weights (the only option offline);
    ``"pretrained"`` uses OpenAI's weights, downloaded and converted once into the cache.
    Config overrides (``num_labels``, ``id2label``, ``pooling``, ``drop_rate``, ...) apply in
    both cases; a new classification head is initialised from ``seed``.
    """
    torch.manual_seed(seed)
    name = str(model)
    if (name in PRESETS or name in SCRATCH_PRESETS) and init == "random":
        return TASK_CLASSES[task](ScratchGPTConfig.from_preset(name, **config_overrides))
    if name in SCRATCH_PRESETS:
        raise ValueError(
            f"--model {name} has no released weights (a shape for --init random); "
            f"pretrained presets: {', '.join(PRESETS)}"
        )
    if name in PRESETS:
        folder = ensure_pretrained_folder(name)
    elif is_model_folder(name):
        folder = Path(name)
    else:
        raise ValueError(
            f"--model {name!r} is neither a preset ({', '.join([*PRESETS, *SCRATCH_PRESETS])}) "
            "nor a model folder "
            "(a directory with config.json)"
        )
    if init == "random":
        config = ScratchGPTConfig.from_pretrained(folder, **config_overrides)
        return TASK_CLASSES[task](config)
    # A new head (other labels than the folder's) is initialised instead of loaded.
    relabel = task == "sequence-classification" and bool(
        {"num_labels", "id2label"} & set(config_overrides)
    )
    return load_model_folder(folder, task, new_head=relabel, **config_overrides)


def sample_generation(
    model: ScratchGPTForCausalLM | ScratchGPTForSequenceClassification,
    tokenizer_dir: str | os.PathLike[str],
    prompt: str = SANITY_PROMPT,
    max_new_tokens: int = 10,
) -> str:
    """Greedy continuation of ``prompt``: a quick look that the weights are in the right places."""
    lm = model if isinstance(model, ScratchGPTForCausalLM) else _causal_lm_sharing(model)
    encoding = load_tiktoken(tokenizer_dir)
    ids = encoding.encode(prompt)
    new_tokens = min(max_new_tokens, lm.config.context_length - len(ids))
    if new_tokens <= 0:
        return prompt
    input_ids = torch.tensor([ids])
    with torch.no_grad():
        output = lm.generate(
            input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=lm.config.eos_token_id,
        )
    return encoding.decode(output[0].tolist())


def _causal_lm_sharing(model: ScratchGPTForSequenceClassification) -> ScratchGPTForCausalLM:
    """A language model over a classifier's backbone (same tensors), for the sanity sample."""
    config = ScratchGPTConfig.from_dict({**model.config.to_dict(), "tie_word_embeddings": True})
    with torch.device("meta"):
        lm = ScratchGPTForCausalLM(config)
    lm.gpt = model.gpt
    lm.tie_weights()
    return lm.eval()


# --- command line ---------------------------------------------------------------------------


def _check_size(model: torch.nn.Module, size: str) -> None:
    preset = PRESETS[SIZE_TO_PRESET[size]]
    config = model.config
    if (config.emb_dim, config.n_layers) != (preset["emb_dim"], preset["n_layers"]):
        raise ConversionError(
            f"--model-size {size} means emb_dim={preset['emb_dim']}, n_layers="
            f"{preset['n_layers']}, but the input has emb_dim={config.emb_dim}, "
            f"n_layers={config.n_layers}"
        )


def _input_path(args: ConvertArguments) -> Path:
    if args.download:
        if args.model_size is None:
            raise ConversionError("--download needs --model-size (124M, 355M, 774M or 1558M)")
        dest = args.checkpoint_dir or default_cache_dir() / "openai" / args.model_size
        try:
            return download_openai_gpt2(args.model_size, dest)
        except DownloadError as err:
            raise DownloadError(
                f"{err}. Fetch OpenAI's {args.model_size} files on a connected machine, then "
                "convert them with --checkpoint-dir DIR (without --download)"
            ) from err
    if args.checkpoint_dir is None:
        raise ConversionError("pass the input with --checkpoint-dir, or fetch it with --download")
    return args.checkpoint_dir


def run(args: ConvertArguments) -> Path:
    """``convert``: read (or download) the weights, write the model folder, print a sanity
    sample unless ``args.no_sample``; returns the written folder."""
    source = _input_path(args)
    _check_output(source, args.output_dir)
    model, tok_dir = convert_model(
        source,
        source_format="openai" if args.download else args.source_format,
        num_labels=args.num_labels,
        labels=args.labels,
        n_heads=args.n_heads,
        tokenizer_dir=args.tokenizer_dir,
        seed=args.seed,
    )
    if args.model_size is not None:
        _check_size(model, args.model_size)
    folder = save_model_folder(model, args.output_dir, tok_dir, max_shard_size=args.max_shard_size)
    kind = "sequence classifier" if isinstance(model, ScratchGPTForSequenceClassification) else "LM"
    print(f"wrote {kind} model folder {folder} ({model.num_parameters():,} parameters)")
    if not args.no_sample:
        print(f"greedy sample: {sample_generation(model, folder)!r}")
    return folder
