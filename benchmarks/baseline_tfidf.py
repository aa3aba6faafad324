"""The classical baseline: TF-IDF + logistic regression on the fine-tuning run's own splits.

    python -m benchmarks.baseline_tfidf                       # baseline only, a few seconds
    python -m benchmarks.baseline_tfidf --model outputs/sms-spam --json baseline.json
    python -m benchmarks.baseline_tfidf --balance undersample --keep-duplicates   # other splits

The splits are not rebuilt here: they come from ``scratchgpt.training.data.load_data`` with
``FinetuneArguments`` parsed from ``--init random --data-file FILE`` (the README's offline
command) plus any flag this script does not know, which is passed on to finetune's parser
(``--seed``, ``--balance``, ``--split-fractions``, ...). A change of the trainer's split
settings therefore moves the baseline's splits with it.

The baseline is fitted on train only. Its hyper-parameters (features: word 1-2-grams, char
2-5-grams within word boundaries, or both; C; class_weight) are chosen on validation only, by
spam F1, then accuracy, then grid order (simplest first); test is scored once, with the chosen
setting. Metrics come from ``scratchgpt.metrics.report.compute_classification_metrics``, the
function behind the fine-tuned model's ``metrics.json``.

``benchmarks/fresh_messages.tsv`` holds 40 hand-written messages (20 spam, 20 ham, SMS format
label<TAB>text) that are not in the SMS file (checked at every run), among them the README's
examples. ``--model DIR`` (repeatable) scores fine-tuned scratchgpt folders on the same test
split and fresh messages through ``scratchgpt.inference.classify``; one table compares all.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# scratchgpt is imported after argument parsing: the package registers itself with
# transformers on import, which takes seconds that --help should not wait for.

FRESH_FILE = Path(__file__).resolve().parent / "fresh_messages.tsv"
README_EXAMPLES = {
    "WINNER!! Claim your prize now": "spam",
    "You won a £1000 prize, call now": "spam",
    "See you at 6?": "ham",
    "ok see you later": "ham",
}
POSITIVE = "spam"
C_VALUES = (1.0, 3.0, 10.0, 30.0, 100.0)
CLASS_WEIGHTS = (None, "balanced")
# recipe.yaml settings that decide which texts land in the test split.
SPLIT_SETTINGS = (
    "dataset",
    "dataset_config",
    "dataset_split",
    "dataset_dir",
    "balance",
    "keep_duplicates",
    "split_fractions",
    "seed",
)


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Any other flag is one of scripts/finetune.py's data flags and goes to its "
        "parser, so the splits are those of `finetune.py --init random --data-file FILE FLAGS`.",
    )
    parser.add_argument(
        "--data-file",
        type=Path,
        help="labelled data, as finetune's --data-file (default: the shared SMS Spam Collection)",
    )
    parser.add_argument(
        "--fresh",
        type=Path,
        default=FRESH_FILE,
        help="hand-written messages not in the data, label<TAB>text "
        "(default: benchmarks/fresh_messages.tsv)",
    )
    parser.add_argument(
        "--model",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="a fine-tuned scratchgpt output folder to score on the same test "
        "split and fresh messages (repeatable)",
    )
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="also write every number as JSON to PATH"
    )
    parser.add_argument(
        "--top", type=int, default=5, help="validation results of the grid to print (default: 5)"
    )
    return parser.parse_known_args(argv)


# ----------------------------------------------------------------------------- data


@dataclass
class Splits:
    """Texts and label ids of train/validation/test, as the trainer splits them."""

    texts: dict[str, list[str]]
    labels: dict[str, list[int]]
    label_names: list[str]
    settings: dict[str, Any]


def finetune_arguments(data_file: Path, finetune_flags: Sequence[str] = ()):
    """The ``FinetuneArguments`` of the README's offline run (plus ``finetune_flags``)."""
    from scratchgpt.training.arguments import parse_args as parse_finetune_args

    return parse_finetune_args(["--init", "random", "--data-file", str(data_file), *finetune_flags])


def load_splits(data_file: Path, finetune_flags: Sequence[str] = ()) -> Splits:
    """The fine-tuning run's splits, from the trainer's own ``load_data``."""
    from scratchgpt.arguments import to_config
    from scratchgpt.training.data import load_data

    args = finetune_arguments(data_file, finetune_flags)
    prepared, _, _ = load_data(args)
    data = prepared.dataset
    settings = {key: value for key, value in to_config(args).items() if key in SPLIT_SETTINGS}
    if POSITIVE not in prepared.label_names:
        raise ValueError(f"the data's labels {prepared.label_names} have no {POSITIVE!r} class")
    return Splits(
        texts={split: list(data[split]["text"]) for split in data},
        labels={split: list(data[split]["label"]) for split in data},
        label_names=list(prepared.label_names),
        settings=settings,
    )


def read_fresh(path: Path, label_names: Sequence[str]) -> tuple[list[str], list[int]]:
    """The hand-written messages (SMS format whatever the extension) and their label ids."""
    from scratchgpt.data.sources import read_labelled_file

    rows, _ = read_labelled_file(path, file_format="sms", label_names=list(label_names))
    return list(rows["text"]), list(rows["label"])


def normalized(text: str) -> str:
    return " ".join(text.casefold().split())


def check_unseen(fresh: Sequence[str], data_file: Path) -> None:
    """Refuse fresh messages that occur in the data file (case and spacing ignored)."""
    from scratchgpt.data.sources import read_labelled_file

    rows, _ = read_labelled_file(data_file)
    seen = {normalized(text) for text in rows["text"]}
    copied = [text for text in fresh if normalized(text) in seen]
    if copied:
        raise ValueError(f"{len(copied)} fresh message(s) occur in {data_file}: {copied[:3]}")


# ----------------------------------------------------------------------------- the baseline


def feature_options() -> dict[str, Callable[[], Any]]:
    """Vectorizers of the grid; sublinear tf, as usual for short texts."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion

    def word() -> TfidfVectorizer:
        return TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)

    def char() -> TfidfVectorizer:
        return TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)

    return {
        "word 1-2": word,
        "char_wb 2-5": char,
        "word 1-2 + char_wb 2-5": lambda: FeatureUnion([("word", word()), ("char", char())]),
    }


@dataclass
class Trial:
    features: str
    C: float
    class_weight: str | None
    validation: dict
    model: Any = field(repr=False, default=None)

    def key(self) -> tuple[float, float]:
        """What the choice maximises: validation spam F1, then validation accuracy."""
        return spam_f1(self.validation), self.validation["accuracy"]

    def summary(self) -> dict:
        return {
            "features": self.features,
            "C": self.C,
            "class_weight": self.class_weight,
            "validation_spam_f1": self.key()[0],
            "validation_accuracy": self.key()[1],
        }


def scores(predictions: Sequence[int], labels: Sequence[int], names: Sequence[str]) -> dict:
    """The same metrics dict as a fine-tuned model's ``metrics.json`` holds per split."""
    from scratchgpt.metrics.report import compute_classification_metrics

    return compute_classification_metrics(list(predictions), list(labels), list(names))


def search(splits: Splits) -> list[Trial]:
    """Fit every grid point on train, score it on validation; best first (stable on ties).

    Each vectorizer is fitted once on train and shared by its classifiers (fitting it again
    per C would give the same matrix, at most of the cost)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    trials = []
    for name, make_features in feature_options().items():
        features = make_features()
        train = features.fit_transform(splits.texts["train"])
        validation = features.transform(splits.texts["validation"])
        for c, weight in itertools.product(C_VALUES, CLASS_WEIGHTS):
            # The dual problem: far more features than messages, so ~10x faster than the
            # primal (liblinear's default) or lbfgs, with the same predictions.
            classifier = LogisticRegression(
                C=c,
                class_weight=weight,
                solver="liblinear",
                dual=True,
                max_iter=1000,
                random_state=0,
            )
            classifier.fit(train, splits.labels["train"])
            predicted = classifier.predict(validation)
            metrics = scores(predicted, splits.labels["validation"], splits.label_names)
            trials.append(Trial(name, c, weight, metrics, make_pipeline(features, classifier)))
    return sorted(trials, key=Trial.key, reverse=True)


# ----------------------------------------------------------------------------- scoring


@dataclass
class Result:
    """One classifier's numbers: test metrics, fresh messages, the README examples."""

    name: str
    test: dict
    fresh_correct: int
    fresh_total: int
    fresh_wrong: list[str]  # "[true label] text"
    readme_examples: dict[str, str]


def result(
    name: str,
    predict: Callable[[list[str]], list[str]],
    splits: Splits,
    fresh: tuple[list[str], list[int]],
) -> Result:
    """Score ``predict`` (texts -> label names) on test, fresh messages and README examples."""
    names = splits.label_names
    texts, labels = fresh
    test_texts = splits.texts["test"]
    predicted = predict([*test_texts, *texts, *README_EXAMPLES])
    test_pred, fresh_pred = predicted[: len(test_texts)], predicted[len(test_texts) :]
    fresh_pred, readme_pred = fresh_pred[: len(texts)], fresh_pred[len(texts) :]
    ids = [_label_id(label, names) for label in test_pred]
    wrong = [  # each with its true label
        f"[{names[y]}] {t}"
        for t, p, y in zip(texts, fresh_pred, labels, strict=True)
        if p != names[y]
    ]
    return Result(
        name=name,
        test=scores(ids, splits.labels["test"], names),
        fresh_correct=len(texts) - len(wrong),
        fresh_total=len(texts),
        fresh_wrong=wrong,
        readme_examples=dict(zip(README_EXAMPLES, readme_pred, strict=True)),
    )


def _label_id(label: str, names: Sequence[str]) -> int:
    if label not in names:
        raise ValueError(f"a model predicted {label!r}, not one of the data's labels {names}")
    return list(names).index(label)


def model_predictor(folder: Path) -> Callable[[list[str]], list[str]]:
    """Texts -> label names with a fine-tuned folder, through the project's classify API."""
    from scratchgpt.inference.classify import classify_texts, load_classifier

    model, resolved = load_classifier(folder)

    def predict(texts: list[str]) -> list[str]:
        return [row["label"] for row in classify_texts(model, resolved, texts, progress=True)]

    return predict


def split_mismatch(folder: Path, splits: Splits) -> list[str]:
    """Split settings in the folder's recipe.yaml that differ from the baseline's."""
    import yaml

    recipe_file = folder / "recipe.yaml"
    if not recipe_file.is_file():
        return [f"{recipe_file} is missing: cannot check the model used these splits"]
    recipe = yaml.safe_load(recipe_file.read_text(encoding="utf-8")) or {}
    return [
        f"{key}: model {recipe.get(key)!r}, baseline {value!r}"
        for key, value in splits.settings.items()
        if key in recipe and recipe[key] != value
    ]


# ----------------------------------------------------------------------------- report


def spam_f1(metrics: dict) -> float:
    return metrics["per_class"][POSITIVE]["f1"]


def format_split(name: str, metrics: dict) -> str:
    spam, ham = metrics["per_class"][POSITIVE], metrics["per_class"].get("ham")
    ham_f1 = f"   ham F1 {ham['f1']:.4f}" if ham else ""
    return (
        f"  {name:<10} acc {metrics['accuracy']:.4f}   spam P {spam['precision']:.4f}  "
        f"R {spam['recall']:.4f}  F1 {spam['f1']:.4f}{ham_f1}   "
        f"({metrics['num_examples']} messages)"
    )


def readme_cell(readme: dict[str, str]) -> str:
    right = sum(readme[text] == label for text, label in README_EXAMPLES.items())
    return " ".join(readme.values()) + f" ({right}/{len(README_EXAMPLES)})"


def format_table(results: Sequence[Result]) -> str:
    width = max(5, *(len(r.name) for r in results))
    lines = [
        f"{'model':<{width}} | test acc | test spam-F1 | fresh correct/N | "
        "README examples (expected spam spam ham ham)"
    ]
    for r in results:
        fresh = f"{r.fresh_correct}/{r.fresh_total}"
        lines.append(
            f"{r.name:<{width}} | {r.test['accuracy']:8.4f} | {spam_f1(r.test):12.4f} | "
            f"{fresh:>15} | {readme_cell(r.readme_examples)}"
        )
    return "\n".join(lines)


def write_json(path: Path, data: dict) -> None:
    """Temp file then rename: a failure leaves no half-written JSON."""
    from scratchgpt.files import atomic_write

    atomic_write(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def describe(trial: Trial) -> str:
    f1, acc = trial.key()
    return (
        f"{trial.features:<22}  C={trial.C:<5g}  class_weight={trial.class_weight!s:<8}  "
        f"val spam-F1 {f1:.4f}  acc {acc:.4f}"
    )


# ----------------------------------------------------------------------------- main


def fit_baseline(splits: Splits, fresh: tuple[list[str], list[int]], top: int) -> tuple:
    """Grid on train/validation, then the chosen setting's test and fresh results."""
    start = time.perf_counter()
    trials = search(splits)
    best = trials[0]
    print(f"\ngrid: {len(trials)} settings fitted on train, best {top} on validation:")
    for trial in trials[:top]:
        print("  " + describe(trial))
    names = splits.label_names
    baseline = result(
        "tfidf+logreg", lambda texts: [names[i] for i in best.model.predict(texts)], splits, fresh
    )
    print(
        f"\nchosen: {best.features}, C={best.C:g}, class_weight={best.class_weight} "
        f"(grid and scoring {time.perf_counter() - start:.1f} s)"
    )
    print(format_split("validation", best.validation))
    print(format_split("test", baseline.test))
    return trials, baseline


def score_model(folder: Path, splits: Splits, fresh: tuple[list[str], list[int]]) -> Result:
    for problem in split_mismatch(folder, splits):
        print(f"note: {folder}: {problem}")
    print(f"\nscoring {folder} on {len(splits.texts['test'])} test + fresh messages ...")
    scored = result(str(folder), model_predictor(folder), splits, fresh)
    print(format_split("test", scored.test))
    return scored


def print_results(results: Sequence[Result]) -> None:
    print(f"\n{format_table(results)}")
    for r in results:
        if r.fresh_wrong:
            print(f"\n{r.name} got wrong ({len(r.fresh_wrong)} fresh):")
            print("\n".join(f"  - {text}" for text in r.fresh_wrong))


def run(args: argparse.Namespace, finetune_flags: Sequence[str]) -> dict:
    """The whole benchmark; returns what ``--json`` writes."""
    import sklearn

    from scratchgpt.paths import sms_spam_file

    args.data_file = args.data_file or sms_spam_file()
    for folder in args.model:  # before any work: a typo should not cost a whole run
        if not (folder / "config.json").is_file():
            raise ValueError(f"--model {folder}: not a model folder (no config.json)")
    splits = load_splits(args.data_file, finetune_flags)
    fresh = read_fresh(args.fresh, splits.label_names)
    check_unseen(fresh[0], args.data_file)
    command = " ".join(
        ["finetune.py --init random --data-file", str(args.data_file), *finetune_flags]
    )
    sizes = ", ".join(f"{s} {len(t)}" for s, t in splits.texts.items())
    print(f"scikit-learn {sklearn.__version__}; the splits of {command}")
    print(f"  {sizes}; split settings {splits.settings}")

    trials, baseline = fit_baseline(splits, fresh, args.top)
    results = [baseline, *(score_model(folder, splits, fresh) for folder in args.model)]
    print_results(results)
    return {
        "scikit_learn": sklearn.__version__,
        "data_file": str(args.data_file),
        "finetune_flags": list(finetune_flags),
        "split_settings": splits.settings,
        "split_sizes": {s: len(t) for s, t in splits.texts.items()},
        "baseline": {**trials[0].summary(), "validation": trials[0].validation},
        "grid": [trial.summary() for trial in trials],
        "results": [asdict(r) for r in results],
    }


def main(argv: Sequence[str] | None = None) -> int:
    args, finetune_flags = parse_args(argv)
    from scratchgpt.data.sources import DataError

    try:
        record = run(args, finetune_flags)
        if args.json:
            write_json(args.json, record)
            print(f"\nwrote {args.json}")
    except (DataError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
