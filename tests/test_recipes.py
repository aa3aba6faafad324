"""``--recipe``: the defaults follow the starting weights, flags override, the record resolves."""

from __future__ import annotations

import pytest

from scratchgpt.training.arguments import RECIPES, FinetuneArguments, parse_args, recipe


def settings(args: FinetuneArguments) -> dict:
    return {name: getattr(args, name) for name in RECIPES["book"]}


def test_pretrained_weights_get_the_books_recipe():
    args = FinetuneArguments()
    assert settings(args) == RECIPES["book"]
    assert (args.trainable, args.lr, args.epochs, args.batch_size) == ("last_block", 5e-5, 5, 8)


def test_random_weights_get_the_measured_recipe():
    args = parse_args(["--init", "random"])
    assert settings(args) == RECIPES["from-scratch"]
    assert args.model == "gpt2-mini" and args.trainable == "all"


def test_flags_override_the_recipe_and_book_stays_available():
    args = parse_args(["--init", "random", "--lr", "3e-4", "--model", "gpt2-small"])
    assert (args.lr, args.model) == (3e-4, "gpt2-small")
    assert args.trainable == RECIPES["from-scratch"]["trainable"]
    book = parse_args(["--init", "random", "--recipe", "book"])
    assert settings(book) == RECIPES["book"]


def test_recipe_file_records_the_resolved_values():
    values = recipe(parse_args(["--init", "random"]))
    assert values["recipe"] == "from-scratch"
    assert {k: values[k] for k in RECIPES["book"]} == RECIPES["from-scratch"]
    again = FinetuneArguments(**{k: v for k, v in values.items() if k != "run_dir"})
    assert settings(again) == RECIPES["from-scratch"]


def test_scratch_shape_has_no_pretrained_weights():
    from scratchgpt.weights.convert import build_model

    with pytest.raises(ValueError, match="gpt2-mini has no released weights"):
        build_model("gpt2-mini", init="pretrained")
    model = build_model("gpt2-mini", init="random", num_labels=2)
    assert (model.config.n_layers, model.config.emb_dim) == (4, 256)


def test_balanced_class_weights_weigh_the_rare_class():
    import torch

    from scratchgpt.training.prefix_cache import ClassifierTrainingModule
    from scratchgpt_modeling.modeling_scratchgpt import ScratchGPTForSequenceClassification
    from tests.helpers import tiny_config

    torch.manual_seed(0)
    model = ScratchGPTForSequenceClassification(tiny_config(num_labels=2))
    ids, labels = torch.randint(0, 50000, (6, 5)), torch.tensor([0, 0, 0, 0, 0, 1])
    weights = torch.tensor([6 / (2 * 5), 6 / (2 * 1)])
    plain = ClassifierTrainingModule(model)(input_ids=ids, labels=labels)
    weighted = ClassifierTrainingModule(model, class_weights=weights)(input_ids=ids, labels=labels)
    expected = torch.nn.functional.cross_entropy(weighted.logits, labels, weight=weights)
    torch.testing.assert_close(weighted.loss, expected)
    assert not torch.allclose(weighted.loss, plain.loss)
    module = ClassifierTrainingModule(model, class_weights=weights)
    assert "class_weights" not in module.state_dict()  # checkpoints do not depend on it
