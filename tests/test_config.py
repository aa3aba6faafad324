import pytest
import torch

from scratchgpt_modeling.configuration_scratchgpt import PRESETS, ScratchGPTConfig
from scratchgpt_modeling.modeling_scratchgpt import ScratchGPTForCausalLM


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(emb_dim=10, n_heads=3), "emb_dim (10) must be divisible by n_heads (3)"),
        (dict(n_layers=0), "n_layers must be a positive integer, got 0"),
        (dict(vocab_size=-5), "vocab_size must be a positive integer, got -5"),
        (dict(context_length=2.5), "context_length must be a positive integer, got 2.5"),
        (dict(drop_rate=1.0), "drop_rate must be in [0, 1), got 1.0"),
        (dict(drop_rate=-0.1), "drop_rate must be in [0, 1), got -0.1"),
        (dict(pooling="max"), "pooling must be one of ('last', 'mean'), got 'max'"),
    ],
)
def test_invalid_values_raise_naming_field_and_value(overrides, message):
    with pytest.raises(ValueError) as err:
        ScratchGPTConfig(**overrides)
    assert message in str(err.value)


def test_standard_aliases_read_and_write_book_names():
    config = ScratchGPTConfig(emb_dim=64, n_heads=4, n_layers=3, context_length=128)
    assert (config.hidden_size, config.num_attention_heads) == (64, 4)
    assert (config.num_hidden_layers, config.max_position_embeddings) == (3, 128)
    config.hidden_size = 32
    assert config.emb_dim == 32


def test_defaults_match_gpt2_small_and_pad_with_endoftext():
    config = ScratchGPTConfig()
    assert (config.vocab_size, config.context_length, config.emb_dim) == (50257, 1024, 768)
    assert (config.n_heads, config.n_layers, config.pad_token_id) == (12, 12, 50256)
    assert config.pooling == "last" and config.qkv_bias


def test_labels_round_trip_through_json(tmp_path):
    config = ScratchGPTConfig(id2label={0: "ham", 1: "spam"}, label2id={"ham": 0, "spam": 1})
    config.save_pretrained(tmp_path)
    loaded = ScratchGPTConfig.from_pretrained(tmp_path)
    assert loaded.num_labels == 2 and loaded.id2label == {0: "ham", 1: "spam"}


@pytest.mark.parametrize(
    ("preset", "millions"),
    [("gpt2-small", 124), ("gpt2-medium", 355), ("gpt2-large", 774), ("gpt2-xl", 1558)],
)
def test_presets_have_openai_parameter_counts(preset, millions):
    with torch.device("meta"):  # shapes only: no memory for gpt2-xl
        model = ScratchGPTForCausalLM(ScratchGPTConfig.from_preset(preset))
    unique = {id(p): p.numel() for p in model.parameters()}  # tied head counted once
    assert round(sum(unique.values()) / 1e6) == millions


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="gpt2-small"):
        ScratchGPTConfig.from_preset("gpt3")
    assert set(PRESETS) == {"gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl"}
