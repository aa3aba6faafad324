"""The saved model folder through the Hugging Face Auto API, pipeline and tokenizer."""

import json
import subprocess
import sys
import textwrap

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, GPT2Tokenizer, pipeline

from scratchgpt.folder import load_model_folder
from scratchgpt.tokenizer import load_hf_tokenizer, load_tiktoken, read_bpe, save_tokenizer

# Run in a fresh interpreter where `import scratchgpt*` fails, to prove the folder alone suffices.
BLOCKED_IMPORT = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("scratchgpt", "scratchgpt_modeling"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
"""


def run_without_library(code: str, tmp_path) -> str:
    script = BLOCKED_IMPORT + textwrap.dedent(code)
    env = {"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "hf_modules"), "PATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,  # never answer a trust_remote_code prompt
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_folder_has_safetensors_code_auto_map_and_tokenizer(tiny_classifier_dir):
    names = {p.name for p in tiny_classifier_dir.iterdir()}
    assert {"config.json", "model.safetensors", "modeling_scratchgpt.py"} <= names
    assert {"configuration_scratchgpt.py", "layers_scratchgpt.py", "vocab.json"} <= names
    assert {"merges.txt", "tokenizer.json"} <= names
    assert not any(name.endswith((".bin", ".pt", ".pth", ".pkl")) for name in names)
    auto_map = json.loads((tiny_classifier_dir / "config.json").read_text())["auto_map"]
    assert set(auto_map) == {
        "AutoConfig",
        "AutoModel",
        "AutoModelForCausalLM",
        "AutoModelForSequenceClassification",
    }


def test_all_auto_classes_load_with_remote_code_without_the_library(tiny_classifier_dir, tmp_path):
    out = run_without_library(
        f"""
        import torch
        from transformers import (AutoConfig, AutoModel, AutoModelForCausalLM,
                                  AutoModelForSequenceClassification, AutoTokenizer)
        folder = {str(tiny_classifier_dir)!r}
        kw = dict(trust_remote_code=True)
        print("RESULT", type(AutoConfig.from_pretrained(folder, **kw)).__name__)
        print("RESULT", type(AutoModel.from_pretrained(folder, **kw)).__name__)
        print("RESULT", type(AutoModelForCausalLM.from_pretrained(folder, **kw)).__name__)
        model = AutoModelForSequenceClassification.from_pretrained(folder, **kw).eval()
        tok = AutoTokenizer.from_pretrained(folder, **kw)
        batch = tok(["free prize now", "see you at lunch tomorrow"], padding=True,
                    return_tensors="pt")
        print("RESULT", model(**batch).logits.tolist())
        """,
        tmp_path,
    )
    lines = [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("RESULT ")]
    assert lines[:3] == ["ScratchGPTConfig", "ScratchGPTModel", "ScratchGPTForCausalLM"]
    model = load_model_folder(tiny_classifier_dir).eval()
    tok = load_hf_tokenizer(tiny_classifier_dir)
    batch = tok(["free prize now", "see you at lunch tomorrow"], padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**batch).logits
    torch.testing.assert_close(torch.tensor(json.loads(lines[3])), expected)


def test_loading_never_unpickles(tiny_classifier_dir, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch.load called: weights must come from safetensors")

    monkeypatch.setattr(torch, "load", refuse)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier_dir)
    assert model.config.id2label == {0: "ham", 1: "spam"}


def test_pipeline_returns_label_names_with_scores(tiny_classifier_dir):
    clf = pipeline("text-classification", model=str(tiny_classifier_dir), trust_remote_code=True)
    results = clf(["WINNER!! Claim your prize", "ok see you later"], top_k=None)
    for per_text in results:
        assert {r["label"] for r in per_text} == {"ham", "spam"}
        assert abs(sum(r["score"] for r in per_text) - 1) < 1e-5


def test_tiktoken_and_transformers_tokenizers_agree_on_every_sms(bpe_dir, sms_texts):
    assert len(sms_texts) == 5574
    fast = load_tiktoken(bpe_dir).encode_ordinary_batch(sms_texts)
    assert fast == load_hf_tokenizer(bpe_dir)(sms_texts)["input_ids"]
    assert load_tiktoken(bpe_dir).encode("Every effort moves you") == [6109, 3626, 6100, 345]


def test_tokenizer_json_only_folder_reads_like_the_bpe_files(tmp_path, bpe_dir, sms_texts):
    """transformers 5 saves a GPT-2 tokenizer as tokenizer.json alone; we read it the same."""
    vocab, merges = read_bpe(bpe_dir)
    source = tmp_path / "tokenizer-json-only"
    GPT2Tokenizer(vocab=vocab, merges=merges).save_pretrained(source)
    assert sorted(p.name for p in source.iterdir()) == ["tokenizer.json", "tokenizer_config.json"]
    assert read_bpe(source) == (vocab, merges)
    texts = sms_texts[:500]
    expected = load_tiktoken(bpe_dir).encode_ordinary_batch(texts)
    assert load_tiktoken(source).encode_ordinary_batch(texts) == expected
    assert load_hf_tokenizer(source)(texts)["input_ids"] == expected
    out = tmp_path / "model-folder"
    save_tokenizer(source, out, model_max_length=64)
    assert read_bpe(out) == (vocab, merges) and (out / "vocab.json").is_file()
    assert AutoTokenizer.from_pretrained(out)(texts)["input_ids"] == expected


def test_saved_tokenizer_loads_offline_and_pads_with_endoftext(tiny_classifier_dir):
    tok = AutoTokenizer.from_pretrained(tiny_classifier_dir)
    assert tok.pad_token == "<|endoftext|>" and tok.pad_token_id == 50256
    assert tok.model_max_length == 64
    assert (
        load_tiktoken(tiny_classifier_dir).encode("Every effort moves you")
        == tok("Every effort moves you")["input_ids"]
    )


def test_scale_out_hooks_device_map_and_sdpa(tiny_classifier_dir):
    """What accelerate/FSDP read: no-split block class, device_map loading, SDPA support."""
    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_classifier_dir, device_map="auto", attn_implementation="sdpa"
    )
    assert set(model._no_split_modules) == {"ScratchGPTBlock"}
    assert model.supports_gradient_checkpointing
    assert model.config._attn_implementation == "sdpa"
    assert next(model.parameters()).device.type == "cpu"
