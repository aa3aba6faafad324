"""Conversion into model folders, checked by logits parity with independent references."""

from __future__ import annotations

import functools
import json
import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import split_torch_state_dict_into_shards
from llms_from_scratch.ch04 import GPTModel  # the book's reference model
from safetensors.torch import load_file, save_file
from transformers import (
    AutoTokenizer,
    GPT2Config,
    GPT2ForSequenceClassification,
    GPT2LMHeadModel,
    GPT2Tokenizer,
)

from scratchgpt.cli import convert_main as main
from scratchgpt.folder import load_model_folder
from scratchgpt.paths import DEFAULT_MAX_SHARD_SIZE
from scratchgpt.tokenizer import load_tiktoken
from scratchgpt.weights import convert as convert_module
from scratchgpt.weights.convert import (
    ConversionError,
    convert,
    detect_format,
    ensure_pretrained_folder,
)
from scratchgpt.weights.tf_checkpoint import write_tf_checkpoint
from scratchgpt_modeling.configuration_scratchgpt import ScratchGPTConfig
from scratchgpt_modeling.modeling_scratchgpt import ScratchGPTForCausalLM

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_gpt2_tf"
HPARAMS = json.loads((FIXTURE / "hparams.json").read_text())
DATA = "model.ckpt.data-00000-of-00001"
TOKENS = torch.tensor([[5, 17, 200, 3, 99, 256, 42, 7], [1, 2, 3, 4, 5, 6, 7, 8]])


@functools.cache
def fixture_arrays() -> dict[str, np.ndarray]:
    with np.load(FIXTURE / "arrays.npz") as npz:
        return {name: npz[name] for name in npz.files}


def tiny_gpt2_config(**overrides) -> GPT2Config:
    """transformers' GPT-2 config of the fixture's size, without dropout."""
    base = dict(
        vocab_size=HPARAMS["n_vocab"],
        n_positions=HPARAMS["n_ctx"],
        n_embd=HPARAMS["n_embd"],
        n_layer=HPARAMS["n_layer"],
        n_head=HPARAMS["n_head"],
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=256,
        eos_token_id=256,
        pad_token_id=256,
    )
    return GPT2Config(**{**base, **overrides})


def reference_from_openai_arrays() -> GPT2LMHeadModel:
    """transformers' own GPT2LMHeadModel loaded from the fixture's arrays (not via our code)."""
    arrays = fixture_arrays()
    state = {
        "transformer.wte.weight": arrays["model/wte"],
        "transformer.wpe.weight": arrays["model/wpe"],
    }
    names = {"ln_1/g": "ln_1.weight", "ln_1/b": "ln_1.bias", "ln_2/g": "ln_2.weight"}
    names |= {"ln_2/b": "ln_2.bias"}
    for layer in ("attn/c_attn", "attn/c_proj", "mlp/c_fc", "mlp/c_proj"):
        names |= {f"{layer}/w": f"{layer.replace('/', '.')}.weight"}
        names |= {f"{layer}/b": f"{layer.replace('/', '.')}.bias"}
    for i in range(HPARAMS["n_layer"]):
        for tf_name, hf_name in names.items():
            value = arrays[f"model/h{i}/{tf_name}"]
            state[f"transformer.h.{i}.{hf_name}"] = value[0] if value.ndim == 3 else value
    state["transformer.ln_f.weight"] = arrays["model/ln_f/g"]
    state["transformer.ln_f.bias"] = arrays["model/ln_f/b"]
    model = GPT2LMHeadModel(tiny_gpt2_config())
    missing, unexpected = model.load_state_dict(
        {k: torch.from_numpy(v.copy()) for k, v in state.items()}, strict=False
    )
    assert set(missing) <= {"lm_head.weight"} and not unexpected
    model.tie_weights()
    return model.eval()


def lm_logits(folder: Path) -> torch.Tensor:
    model = load_model_folder(folder, task="causal-lm").eval()
    with torch.no_grad():
        return model(TOKENS).logits


def no_output(parent: Path, name: str) -> bool:
    """Neither the folder nor a leftover temporary sibling exists."""
    return not (parent / name).exists() and not list(parent.glob(f".{name}*"))


# --- OpenAI TensorFlow checkpoints ----------------------------------------------------------


def test_openai_fixture_matches_transformers_gpt2(tmp_path):
    folder = convert(FIXTURE, tmp_path / "out", progress=False)
    with torch.no_grad():
        expected = reference_from_openai_arrays()(TOKENS).logits
    torch.testing.assert_close(lm_logits(folder), expected, atol=1e-5, rtol=1e-5)
    config = json.loads((folder / "config.json").read_text())
    assert config["eos_token_id"] == 256 and config["tie_word_embeddings"] is True
    assert (folder / "vocab.json").is_file() and (folder / "generation_config.json").is_file()


def test_openai_to_classifier_keeps_backbone_and_seeds_head(tmp_path):
    lm_folder = convert(FIXTURE, tmp_path / "lm", progress=False)
    a = convert(FIXTURE, tmp_path / "a", labels=["ham", "spam"], seed=1, progress=False)
    b = convert(FIXTURE, tmp_path / "b", labels=["ham", "spam"], seed=1, progress=False)
    c = convert(FIXTURE, tmp_path / "c", num_labels=3, seed=2, progress=False)
    clf_a, clf_b, clf_c = (load_model_folder(f) for f in (a, b, c))
    assert clf_a.config.id2label == {0: "ham", 1: "spam"} and clf_c.config.num_labels == 3
    torch.testing.assert_close(clf_a.classifier.weight, clf_b.classifier.weight, atol=0, rtol=0)
    assert clf_a.classifier.weight.std() > 0 and torch.all(clf_a.classifier.bias == 0)
    assert not torch.equal(clf_a.classifier.weight, clf_c.classifier.weight[:2])
    lm = load_model_folder(lm_folder, task="causal-lm")
    with torch.no_grad():
        torch.testing.assert_close(
            clf_a.gpt(TOKENS).last_hidden_state, lm.gpt(TOKENS).last_hidden_state, atol=0, rtol=0
        )


def test_sharded_output_loads_back(tmp_path):
    folder = convert(FIXTURE, tmp_path / "out", max_shard_size="20KB", progress=False)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert (
        len(set(index["weight_map"].values())) > 1 and not (folder / "model.safetensors").exists()
    )
    with torch.no_grad():
        expected = reference_from_openai_arrays()(TOKENS).logits
    torch.testing.assert_close(lm_logits(folder), expected, atol=1e-5, rtol=1e-5)


def test_gpt2_xl_would_be_sharded():
    """The default shard size splits gpt2-xl (6.2 GB of fp32) exactly as save_pretrained does."""
    with torch.device("meta"):
        model = ScratchGPTForCausalLM(ScratchGPTConfig.from_preset("gpt2-xl"))
    state = {k: v for k, v in model.state_dict().items() if k != "out_head.weight"}
    split = split_torch_state_dict_into_shards(state, max_shard_size=DEFAULT_MAX_SHARD_SIZE)
    assert split.is_sharded and len(split.filename_to_tensors) >= 3


def test_cli_prints_greedy_sample_matching_transformers(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--checkpoint-dir", str(FIXTURE), "--output-dir", str(out)]) == 0
    printed = capsys.readouterr().out
    encoding = load_tiktoken(FIXTURE)
    prompt = torch.tensor([encoding.encode("Every effort moves you")])
    with torch.no_grad():
        greedy = reference_from_openai_arrays().generate(
            prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=10, do_sample=False
        )
    assert f"greedy sample: {encoding.decode(greedy[0].tolist())!r}" in printed
    assert f"wrote LM model folder {out}" in printed


# --- transformers GPT-2 folders -------------------------------------------------------------


def _write_tokenizer(folder: Path) -> None:
    shutil.copyfile(FIXTURE / "encoder.json", folder / "vocab.json")
    shutil.copyfile(FIXTURE / "vocab.bpe", folder / "merges.txt")


@pytest.mark.parametrize(
    "layout", ["safetensors", "hub-unprefixed", "sharded", "pytorch_bin", "untied"]
)
def test_transformers_gpt2_round_trip(tmp_path, layout):
    torch.manual_seed(0)
    config = tiny_gpt2_config(tie_word_embeddings=layout != "untied")
    reference = GPT2LMHeadModel(config).eval()
    src = tmp_path / "hf"
    reference.save_pretrained(src, max_shard_size="20KB" if layout == "sharded" else "2GB")
    if layout == "hub-unprefixed":  # openai-community/gpt2 stores keys without "transformer."
        state = load_file(src / "model.safetensors")
        save_file(
            {k.removeprefix("transformer."): v for k, v in state.items()}, src / "model.safetensors"
        )
    if layout == "pytorch_bin":
        state = load_file(src / "model.safetensors")
        (src / "model.safetensors").unlink()
        torch.save(state, src / "pytorch_model.bin")
    _write_tokenizer(src)
    assert detect_format(src) == "hf"
    folder = convert(src, tmp_path / "out", progress=False)
    tied = json.loads((folder / "config.json").read_text())["tie_word_embeddings"]
    assert tied is (layout != "untied")
    with torch.no_grad():
        expected = reference(TOKENS).logits
    torch.testing.assert_close(lm_logits(folder), expected, atol=1e-5, rtol=1e-5)


def test_transformers_gpt2_classifier_round_trip(tmp_path):
    torch.manual_seed(1)
    config = tiny_gpt2_config(
        num_labels=2, id2label={0: "ham", 1: "spam"}, label2id={"ham": 0, "spam": 1}
    )
    reference = GPT2ForSequenceClassification(config).eval()
    src = tmp_path / "hf"
    reference.save_pretrained(src)
    _write_tokenizer(src)
    folder = convert(src, tmp_path / "out", progress=False)
    model = load_model_folder(folder).eval()
    assert model.config.id2label == {0: "ham", 1: "spam"}
    with torch.no_grad():
        torch.testing.assert_close(
            model(TOKENS).logits, reference(TOKENS).logits, atol=1e-5, rtol=1e-5
        )


# --- transformers 5 folders: tokenizer.json is the only tokenizer file ------------------------

SMS_LIKE = [
    "WINNER!! As a valued network customer you have been selected to receive a £900 prize "
    "reward! To claim call 09061701461. Claim code KL341. Valid 12 hours only.",
    "Ok lar... Joking wif u oni...",
    "  Sorry, I'll call later 😊\tin meeting<|endoftext|>",
    "Had your mobile 11 months or more? U R entitled to Update to the latest colour mobiles",
]


def _gpt2_tokenizer_from(folder: Path, vocab_name: str, merges_name: str) -> GPT2Tokenizer:
    """transformers' own tokenizer over BPE files (in memory: ``vocab_file=`` is empty in 5.x)."""
    vocab = json.loads((folder / vocab_name).read_text(encoding="utf-8"))
    lines = (folder / merges_name).read_text(encoding="utf-8").splitlines()
    merges = [tuple(line.split(" ")) for line in lines[1:] if line]
    return GPT2Tokenizer(vocab=vocab, merges=merges)


def _transformers5_folder(folder: Path, tokenizer: GPT2Tokenizer, **config) -> GPT2LMHeadModel:
    """A GPT-2 folder as transformers 5 saves it today: model + tokenizer.json only."""
    torch.manual_seed(0)
    reference = GPT2LMHeadModel(tiny_gpt2_config(**config)).eval()
    reference.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    assert (folder / "tokenizer.json").is_file()
    assert not (folder / "vocab.json").exists() and not (folder / "merges.txt").exists()
    return reference


@pytest.fixture
def no_shared_data(tmp_path, monkeypatch) -> Path:
    """No shared GPT-2 files to fall back on, as on a user's machine."""
    missing = tmp_path / "no-shared-data"
    monkeypatch.setenv("SCRATCHGPT_SHARED_DATA", str(missing))
    return missing


@pytest.mark.parametrize("vocabulary", ["gpt2", "fixture"])
def test_transformers5_folder_with_only_tokenizer_json(
    tmp_path, bpe_dir, no_shared_data, capsys, vocabulary
):
    """Converts without --tokenizer-dir; same logits as GPT2LMHeadModel, same token ids."""
    if vocabulary == "gpt2":  # the real 50257-token GPT-2 BPE
        tokenizer = _gpt2_tokenizer_from(bpe_dir, "encoder.json", "vocab.bpe")
        sizes = dict(vocab_size=50257, bos_token_id=50256, eos_token_id=50256, pad_token_id=50256)
    else:  # the fixture's 257 tokens: a vocabulary the shared GPT-2 files cannot stand in for
        tokenizer = _gpt2_tokenizer_from(FIXTURE, "encoder.json", "vocab.bpe")
        sizes = {}
    src, out = tmp_path / "hf", tmp_path / "out"
    reference = _transformers5_folder(src, tokenizer, **sizes)
    assert main(["--checkpoint-dir", str(src), "--output-dir", str(out)]) == 0, (
        capsys.readouterr().err
    )
    assert "greedy sample:" in capsys.readouterr().out
    with torch.no_grad():
        torch.testing.assert_close(lm_logits(out), reference(TOKENS).logits, atol=1e-5, rtol=1e-5)
    assert (out / "vocab.json").is_file() and (out / "merges.txt").is_file()
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert json.loads((out / "config.json").read_text())["eos_token_id"] == eot
    source_tok, converted_tok = (
        AutoTokenizer.from_pretrained(src),
        AutoTokenizer.from_pretrained(out),
    )
    expected = source_tok(SMS_LIKE)["input_ids"]
    assert converted_tok(SMS_LIKE)["input_ids"] == expected
    assert load_tiktoken(out).encode_batch(SMS_LIKE, allowed_special="all") == expected
    assert converted_tok.pad_token == "<|endoftext|>"


def test_transformers5_classifier_folder_with_only_tokenizer_json(tmp_path, no_shared_data):
    torch.manual_seed(1)
    config = tiny_gpt2_config(num_labels=2, id2label={0: "ham", 1: "spam"})
    reference = GPT2ForSequenceClassification(config).eval()
    src = tmp_path / "hf"
    reference.save_pretrained(src)
    _gpt2_tokenizer_from(FIXTURE, "encoder.json", "vocab.bpe").save_pretrained(src)
    folder = convert(src, tmp_path / "out", progress=False)
    with torch.no_grad():
        torch.testing.assert_close(
            load_model_folder(folder)(TOKENS).logits, reference(TOKENS).logits, atol=1e-5, rtol=1e-5
        )


def test_missing_tokenizer_names_folder_and_files(tmp_path, no_shared_data, capsys):
    src = tmp_path / "hf"
    GPT2LMHeadModel(tiny_gpt2_config()).save_pretrained(src)
    # Nothing in the source and no default files: both folders are named.
    err = _run_cli_expecting_error(tmp_path, src, capsys)
    assert f"{src} has no tokenizer files" in err and "--tokenizer-dir" in err
    assert "vocab.json + merges.txt, tokenizer.json, or OpenAI's encoder.json + vocab.bpe" in err
    assert f"{no_shared_data / 'gpt2_bpe'}" in err
    # Half a tokenizer is not silently replaced by GPT-2's: the missing file is named.
    shutil.copyfile(FIXTURE / "encoder.json", src / "vocab.json")
    err = _run_cli_expecting_error(tmp_path, src, capsys)
    assert f"{src} has no GPT-2 tokenizer files" in err and "it has only vocab.json" in err
    # An explicit --tokenizer-dir without the files says so too.
    empty = tmp_path / "empty"
    empty.mkdir()
    err = _run_cli_expecting_error(tmp_path, src, capsys, "--tokenizer-dir", str(empty))
    assert f"{empty} has no GPT-2 tokenizer files" in err and "it has none of them" in err


def test_tokenizer_json_that_would_tokenize_differently_is_refused(tmp_path, capsys):
    src = tmp_path / "hf"
    tokenizer = _gpt2_tokenizer_from(FIXTURE, "encoder.json", "vocab.bpe")
    _transformers5_folder(src, tokenizer)
    data = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    data["pre_tokenizer"]["add_prefix_space"] = True
    (src / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    err = _run_cli_expecting_error(tmp_path, src, capsys)
    assert f"{src / 'tokenizer.json'} is not GPT-2's byte-level BPE tokenizer" in err
    assert "add_prefix_space=False" in err


# --- the book's GPTModel state_dict ---------------------------------------------------------


def _book_model(qkv_bias: bool = True, seed: int = 0):
    torch.manual_seed(seed)
    cfg = {
        "vocab_size": HPARAMS["n_vocab"],
        "context_length": HPARAMS["n_ctx"],
        "emb_dim": 16,
        "n_heads": 2,
        "n_layers": 2,
        "drop_rate": 0.0,
        "qkv_bias": qkv_bias,
    }
    model = GPTModel(cfg).eval()
    with torch.no_grad():  # LayerNorm params are 1/0 at init: perturb so a swap would show
        for name, param in model.named_parameters():
            if "norm" in name:
                param.add_(0.1 * torch.randn_like(param))
    return model


@pytest.mark.parametrize("qkv_bias", [True, False])
def test_book_state_dict_round_trip(tmp_path, qkv_bias):
    book = _book_model(qkv_bias)
    pth = tmp_path / "gpt2-tiny.pth"
    torch.save(book.state_dict(), pth)
    folder = convert(pth, tmp_path / "out", n_heads=2, tokenizer_dir=FIXTURE, progress=False)
    config = json.loads((folder / "config.json").read_text())
    # The book's randomly initialised out_head is its own matrix: it must stay untied.
    assert config["tie_word_embeddings"] is False and config["qkv_bias"] is qkv_bias
    with torch.no_grad():
        torch.testing.assert_close(lm_logits(folder), book(TOKENS), atol=1e-5, rtol=1e-5)


def test_book_tied_lm_and_checkpoint_dict(tmp_path):
    book = _book_model()
    book.out_head.weight = book.tok_emb.weight  # as after loading OpenAI weights in chapter 5
    pth = tmp_path / "model_and_optimizer.pth"
    torch.save({"model_state_dict": book.state_dict(), "optimizer_state_dict": {}}, pth)
    folder = convert(pth, tmp_path / "out", n_heads=2, tokenizer_dir=FIXTURE, progress=False)
    assert json.loads((folder / "config.json").read_text())["tie_word_embeddings"] is True
    with torch.no_grad():
        torch.testing.assert_close(lm_logits(folder), book(TOKENS), atol=1e-5, rtol=1e-5)


def test_book_classifier_becomes_sequence_classification(tmp_path):
    book = _book_model(seed=3)
    book.out_head = torch.nn.Linear(16, 2)  # chapter 6's review/spam classifier head
    pth = tmp_path / "review_classifier.pth"
    torch.save(book.state_dict(), pth)
    folder = convert(
        pth, tmp_path / "out", labels=["negative", "positive"], n_heads=2, tokenizer_dir=FIXTURE,
        progress=False,
    )  # fmt: skip
    model = load_model_folder(folder).eval()
    assert model.config.id2label == {0: "negative", 1: "positive"}
    with torch.no_grad():  # unpadded input: last-token pooling equals the book's position -1
        torch.testing.assert_close(model(TOKENS).logits, book(TOKENS)[:, -1], atol=1e-5, rtol=1e-5)
    with pytest.raises(ConversionError, match="classifier with 2 outputs.*3"):
        convert(
            pth, tmp_path / "bad", num_labels=3, n_heads=2, tokenizer_dir=FIXTURE, progress=False
        )
    assert no_output(tmp_path, "bad")


def test_book_unknown_width_needs_n_heads(tmp_path):
    pth = tmp_path / "m.pth"
    torch.save(_book_model().state_dict(), pth)
    with pytest.raises(ConversionError, match="emb_dim 16 .*--n-heads"):
        convert(pth, tmp_path / "out", tokenizer_dir=FIXTURE, progress=False)


# --- bad input: clear errors, no output folder ----------------------------------------------


@pytest.fixture
def ckpt(tmp_path) -> Path:
    return Path(shutil.copytree(FIXTURE, tmp_path / "ckpt"))


def _run_cli_expecting_error(tmp_path: Path, source: Path, capsys, *extra: str) -> str:
    code = main(["--checkpoint-dir", str(source), "--output-dir", str(tmp_path / "out"), *extra])
    assert code == 2
    assert no_output(tmp_path, "out")
    return capsys.readouterr().err


def test_missing_hparams_is_named(tmp_path, ckpt, capsys):
    (ckpt / "hparams.json").unlink()
    err = _run_cli_expecting_error(tmp_path, ckpt, capsys)
    assert "hparams.json does not exist" in err


def test_missing_data_shard_is_named(tmp_path, ckpt, capsys):
    (ckpt / DATA).unlink()
    assert f"{DATA} does not exist" in _run_cli_expecting_error(tmp_path, ckpt, capsys)


def test_truncated_shard_is_reported(tmp_path, ckpt, capsys):
    (ckpt / DATA).write_bytes((ckpt / DATA).read_bytes()[:1000])
    err = _run_cli_expecting_error(tmp_path, ckpt, capsys)
    assert "truncated" in err and "only 1000 bytes" in err


def test_flipped_byte_names_the_tensor(tmp_path, ckpt, capsys):
    raw = bytearray((ckpt / DATA).read_bytes())
    raw[-5] ^= 0x40  # the last tensor in the shard: model/wte
    (ckpt / DATA).write_bytes(bytes(raw))
    err = _run_cli_expecting_error(tmp_path, ckpt, capsys)
    assert "crc32c mismatch for variable 'model/wte'" in err


def test_shape_mismatch_names_variable_and_shapes(tmp_path, ckpt, capsys):
    arrays = dict(fixture_arrays())
    arrays["model/h1/mlp/c_fc/b"] = np.zeros(63, np.float32)
    write_tf_checkpoint(ckpt / "model.ckpt", arrays)
    err = _run_cli_expecting_error(tmp_path, ckpt, capsys)
    assert "'model/h1/mlp/c_fc/b' has shape (63,)" in err and "implies (64,)" in err
    assert "n_embd=16" in err


def test_unknown_format(tmp_path, capsys):
    src = tmp_path / "weird"
    src.mkdir()
    (src / "weights.npy").write_bytes(b"\x93NUMPY")
    err = _run_cli_expecting_error(tmp_path, src, capsys)
    assert "cannot tell what" in err and "--from" in err


def test_wrong_model_size_and_missing_input(tmp_path, capsys):
    err = _run_cli_expecting_error(tmp_path, FIXTURE, capsys, "--model-size", "124M")
    assert "--model-size 124M means emb_dim=768" in err and "emb_dim=16" in err
    assert main(["--output-dir", str(tmp_path / "out")]) == 2
    assert "--checkpoint-dir" in capsys.readouterr().err
    assert main(["--download", "--output-dir", str(tmp_path / "out")]) == 2
    assert "--download needs --model-size" in capsys.readouterr().err


def test_refuses_to_overwrite_its_input(ckpt, capsys):
    assert main(["--checkpoint-dir", str(ckpt), "--output-dir", str(ckpt)]) == 2
    assert "would replace the input" in capsys.readouterr().err
    assert (ckpt / "model.ckpt.index").is_file()


def test_corrupt_pth_and_safetensors(tmp_path, capsys):
    pth = tmp_path / "broken.pth"
    pth.write_bytes(b"PK\x03\x04 not really a zip")
    err = _run_cli_expecting_error(tmp_path, pth, capsys, "--n-heads", "2")
    assert "broken.pth: cannot load it as a PyTorch state_dict" in err
    src = tmp_path / "hf"
    GPT2LMHeadModel(tiny_gpt2_config()).save_pretrained(src)
    (src / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    err = _run_cli_expecting_error(tmp_path, src, capsys)
    assert "model.safetensors is not a readable safetensors file" in err


def test_bad_hparams_values(tmp_path, ckpt, capsys):
    hparams = {**HPARAMS, "n_head": 3}  # 16 is not divisible by 3
    (ckpt / "hparams.json").write_text(json.dumps(hparams))
    assert "must be divisible by n_heads (3)" in _run_cli_expecting_error(tmp_path, ckpt, capsys)
    (ckpt / "hparams.json").write_text(json.dumps({**HPARAMS, "n_layer": "2"}))
    assert "n_layer must be a positive integer, got '2'" in _run_cli_expecting_error(
        tmp_path, ckpt, capsys
    )


def test_detect_format(tmp_path):
    assert detect_format(FIXTURE) == "openai"
    assert detect_format(FIXTURE / "model.ckpt.index") == "openai"
    (tmp_path / "m.pth").write_bytes(b"")
    assert detect_format(tmp_path / "m.pth") == "book"
    with pytest.raises(ConversionError, match="does not exist"):
        detect_format(tmp_path / "nope")


# --- download + convert through a local server ----------------------------------------------


@pytest.fixture
def openai_server(tmp_path):
    """Serves the fixture as https://.../models/124M/ would (plus a stand-in encoder)."""
    root = tmp_path / "www"
    shutil.copytree(FIXTURE, root / "models" / "124M")
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.hits = 0
    original = handler.func.do_GET

    def counting_get(self):
        httpd.hits += 1
        original(self)

    handler.func.do_GET = counting_get
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/models", httpd
    httpd.shutdown()
    httpd.server_close()
    handler.func.do_GET = original


def test_ensure_pretrained_folder_downloads_once(tmp_path, monkeypatch, openai_server):
    base_url, httpd = openai_server
    fetch = partial(convert_module.download_openai_gpt2, base_url=base_url, progress=False)
    monkeypatch.setattr(convert_module, "download_openai_gpt2", fetch)
    folder = ensure_pretrained_folder("gpt2-small", cache_dir=tmp_path / "cache")
    assert folder == tmp_path / "cache" / "gpt2-small" and httpd.hits == 7
    assert ensure_pretrained_folder("gpt2-small", cache_dir=tmp_path / "cache") == folder
    assert httpd.hits == 7  # the converted folder is reused
    with torch.no_grad():
        expected = reference_from_openai_arrays()(TOKENS).logits
    torch.testing.assert_close(lm_logits(folder), expected, atol=1e-5, rtol=1e-5)


def test_cli_download_then_size_check(tmp_path, monkeypatch, openai_server, capsys):
    base_url, httpd = openai_server
    fetch = partial(convert_module.download_openai_gpt2, base_url=base_url, progress=False)
    monkeypatch.setattr(convert_module, "download_openai_gpt2", fetch)
    ckpt = tmp_path / "ckpt"
    args = ["--download", "--model-size", "124M", "--checkpoint-dir", str(ckpt)]
    err = _run_cli_expecting_error(tmp_path, ckpt, capsys, *args)
    # The served files are the tiny fixture, not 124M: downloaded, then refused by the check.
    assert httpd.hits == 7 and (ckpt / DATA).read_bytes() == (FIXTURE / DATA).read_bytes()
    assert "--model-size 124M means emb_dim=768" in err
