"""Property-style tests of the collator and the batch samplers, and their effect on the model."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import torch
from datasets import Dataset

from scratchgpt.data.collate import (
    PAD_TOKEN_ID,
    ClassificationCollator,
    LengthGroupedBatchSampler,
    SortedBatchSampler,
    make_dataloader,
)


def _features(rng: random.Random, n: int, max_len: int = 40) -> list[dict]:
    return [
        {
            "input_ids": [rng.randrange(50000) for _ in range(rng.randint(1, max_len))],
            "label": rng.randrange(2),
            "text": "ignored",
        }
        for _ in range(n)
    ]


def _lengths(seed: int, n: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(1, 200) for _ in range(n)]


# ----------------------------------------------------------------------------- collator


@pytest.mark.parametrize("multiple", [None, 1, 8])
def test_collator_pads_right_to_batch_longest(multiple):
    rng = random.Random(multiple or 0)
    collate = ClassificationCollator(pad_to_multiple_of=multiple)
    for _ in range(30):
        features = _features(rng, rng.randint(1, 9))
        batch = collate(features)
        longest = max(len(f["input_ids"]) for f in features)
        width = batch["input_ids"].shape[1]
        assert width >= longest and width - longest < (multiple or 1)
        if multiple:
            assert width % multiple == 0
        for row, feature in enumerate(features):
            n = len(feature["input_ids"])
            assert batch["input_ids"][row, :n].tolist() == feature["input_ids"]
            assert (batch["input_ids"][row, n:] == PAD_TOKEN_ID).all()
            assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (width - n)
        assert batch["labels"].tolist() == [f["label"] for f in features]
        assert batch["input_ids"].dtype == batch["attention_mask"].dtype == torch.long


def test_collator_fixed_length_and_errors():
    features = [{"input_ids": [1, 2, 3], "label": 0}, {"input_ids": [4], "label": 1}]
    batch = ClassificationCollator(pad_to_length=120)(features)
    assert batch["input_ids"].shape == (2, 120)
    assert batch["attention_mask"].sum(1).tolist() == [3, 1]
    with pytest.raises(ValueError, match="3 tokens exceeds pad_to_length=2"):
        ClassificationCollator(pad_to_length=2)(features)
    with pytest.raises(ValueError, match="empty batch"):
        ClassificationCollator()([])
    with pytest.raises(ValueError, match=r"batch positions \[1\] have no input_ids"):
        ClassificationCollator()([{"input_ids": [1]}, {"input_ids": []}])
    with pytest.raises(ValueError, match=r"positions \[1\] lack the 'label'"):
        ClassificationCollator()([{"input_ids": [1], "label": 0}, {"input_ids": [2]}])
    with pytest.raises(ValueError, match="pad_to_multiple_of must be a positive"):
        ClassificationCollator(pad_to_multiple_of=0)
    assert "labels" not in ClassificationCollator()([{"input_ids": [5, 6]}])


# ----------------------------------------------------------------------------- samplers


@pytest.mark.parametrize(
    ("n", "batch_size", "drop_last"),
    [(1, 4, False), (97, 8, False), (1000, 16, False), (1000, 16, True)],
)
def test_length_grouped_sampler_covers_each_example_once(n, batch_size, drop_last):
    sampler = LengthGroupedBatchSampler(
        _lengths(n, n), batch_size, seed=3, bucket_batches=5, drop_last=drop_last
    )
    for epoch in range(3):
        batches = list(sampler)
        assert len(batches) == len(sampler)
        seen = Counter(i for batch in batches for i in batch)
        assert all(count == 1 for count in seen.values())
        if drop_last:
            assert all(len(b) == batch_size for b in batches)
            assert len(seen) == n - n % batch_size
        else:
            assert set(seen) == set(range(n))
        assert sampler.epoch == epoch + 1


def test_length_grouped_sampler_is_seeded_per_epoch_and_groups_lengths():
    lengths = _lengths(0, 2000)
    a = LengthGroupedBatchSampler(lengths, 32, seed=1)
    b = LengthGroupedBatchSampler(lengths, 32, seed=1)
    assert a.batches(0) == b.batches(0) and a.batches(4) == b.batches(4)
    assert a.batches(0) != a.batches(1)
    assert a.batches(0) != LengthGroupedBatchSampler(lengths, 32, seed=2).batches(0)
    b.set_epoch(4)
    assert next(iter(b)) == a.batches(4)[0]

    def padding(batches):
        return sum(max(lengths[i] for i in batch) * len(batch) for batch in batches) - sum(lengths)

    shuffled = list(range(2000))
    random.Random(0).shuffle(shuffled)
    random_batches = [shuffled[i : i + 32] for i in range(0, 2000, 32)]
    # Grouping must remove most of the padding that random batches carry.
    assert padding(a.batches(0)) < 0.2 * padding(random_batches)


def test_sorted_sampler_is_longest_first_and_complete():
    lengths = _lengths(5, 103)
    batches = list(SortedBatchSampler(lengths, 10))
    order = [i for batch in batches for i in batch]
    assert sorted(order) == list(range(103)) and len(batches) == 11
    assert [lengths[i] for i in order] == sorted(lengths, reverse=True)


def _tiny_split(n: int) -> Dataset:
    rng = random.Random(n)
    ids = [[rng.randrange(100) for _ in range(rng.randint(1, 30))] for _ in range(n)]
    return Dataset.from_dict(
        {"input_ids": ids, "length": [len(x) for x in ids], "label": list(range(n))}
    )


def test_dataloader_under_accelerate_gives_each_example_once_per_epoch():
    from accelerate import Accelerator

    split = _tiny_split(203)
    accelerator = Accelerator(cpu=True)
    loader = accelerator.prepare(make_dataloader(split, 16, train=True, seed=9))
    epochs = []
    for epoch in range(2):
        loader.set_epoch(epoch)
        labels = [label for batch in loader for label in batch["labels"].tolist()]
        assert sorted(labels) == list(range(203))
        epochs.append(labels)
    assert epochs[0] != epochs[1]
    again = accelerator.prepare(make_dataloader(split, 16, train=True, seed=9))
    again.set_epoch(1)
    assert [label for batch in again for label in batch["labels"].tolist()] == epochs[1]


def test_two_process_shards_follow_the_epoch_set_through_accelerate():
    from accelerate.data_loader import prepare_data_loader

    split = _tiny_split(50)
    expected = LengthGroupedBatchSampler(split["length"], 4, seed=1).batches(3)
    seen = set()
    for rank in range(2):
        loader = prepare_data_loader(
            make_dataloader(split, 4, train=True, seed=1),
            num_processes=2,
            process_index=rank,
            put_on_device=False,
        )
        loader.set_epoch(3)  # reaches our sampler through accelerate's BatchSamplerShard
        batches = [batch["labels"].tolist() for batch in loader]
        assert batches[:6] == expected[rank::2][:6]
        seen.update(label for batch in batches for label in batch)
    assert seen == set(range(50))


def test_eval_dataloader_batches_are_sorted_and_tight():
    split = _tiny_split(50)
    loader = make_dataloader(split, 8, train=False)
    widths = [batch["input_ids"].shape[1] for batch in loader]
    assert widths == sorted(widths, reverse=True)
    assert widths[0] == max(split["length"])
    assert sum(batch["labels"].numel() for batch in make_dataloader(split, 8, train=False)) == 50


# ----------------------------------------------------------------------------- with the model


@pytest.fixture(scope="module")
def tiny_classifier():
    from scratchgpt_modeling.configuration_scratchgpt import ScratchGPTConfig
    from scratchgpt_modeling.modeling_scratchgpt import ScratchGPTForSequenceClassification

    torch.manual_seed(0)
    config = ScratchGPTConfig(
        vocab_size=50257, context_length=64, emb_dim=32, n_heads=2, n_layers=2, num_labels=2
    )
    return ScratchGPTForSequenceClassification(config).eval()


def test_padding_never_changes_a_messages_logits(tiny_classifier):
    rng = random.Random(11)
    for multiple in (None, 8):
        features = _features(rng, 7, max_len=40)
        batch = ClassificationCollator(pad_to_multiple_of=multiple)(features)
        with torch.no_grad():
            padded = tiny_classifier(batch["input_ids"], attention_mask=batch["attention_mask"])
            for row, feature in enumerate(features):
                alone = tiny_classifier(torch.tensor([feature["input_ids"]])).logits[0]
                torch.testing.assert_close(padded.logits[row], alone, rtol=1e-5, atol=1e-5)


def test_pooling_reads_the_last_real_token(tiny_classifier):
    features = _features(random.Random(12), 6, max_len=30)
    batch = ClassificationCollator(pad_to_length=40)(features)
    with torch.no_grad():
        hidden = tiny_classifier.gpt(
            batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state
        logits = tiny_classifier(**batch).logits
        for row, feature in enumerate(features):
            last = len(feature["input_ids"]) - 1
            expected = tiny_classifier.classifier(hidden[row, last])
            torch.testing.assert_close(logits[row], expected, rtol=1e-5, atol=1e-5)
            # ... and not position -1, a pad token here (the book's pooling).
            assert not torch.allclose(logits[row], tiny_classifier.classifier(hidden[row, -1]))
