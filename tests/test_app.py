"""The browser app (``scripts/app.py``): its answers equal ``classify``'s, the attribution is
leave-one-out done right, files and bad input are handled, the API answers ``gradio_client``,
and a real Chromium drives the page (typing, clicking, uploading) and reads the scores back."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from scratchgpt import ClassifyArguments, classify
from scratchgpt.app import AppArguments
from scratchgpt.app.attribution import (
    MAX_PARTS,
    character_pieces,
    group_runs,
    leave_one_out,
    log_odds,
)
from scratchgpt.app.service import DemoService, model_facts, read_messages
from scratchgpt.inference.classify import TextClassifier, TruncationWarning, load_classifier
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[1]
SPAM = "win cash prize now claim free award"
HAM = "see you at home later tonight thanks mum"
FILE_LINES = [HAM, "", SPAM, "ok thanks", "   ", "urgent txt stop now"]  # 2 empty lines
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def classify_scores(folder: Path, texts: list[str]) -> list[dict]:
    """What ``classify.py`` answers (through its Python API) for ``texts``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)
        return classify(ClassifyArguments(model=str(folder)), texts)


@pytest.fixture(scope="module")
def service(trained_classifier_dir) -> DemoService:
    service = DemoService(AppArguments(model=str(trained_classifier_dir)))
    yield service
    service.close()


# ----------------------------------------------------------------------- answers without a page


def test_answers_equal_classify_and_the_model_learned(service, trained_classifier_dir):
    reference = classify_scores(trained_classifier_dir, [SPAM, HAM])
    assert [r["label"] for r in reference] == ["spam", "ham"]  # the toy task was learned
    for text, expected in zip([SPAM, HAM], reference, strict=True):
        answer = service.classify(text)
        assert answer.result["label"] == expected["label"]
        assert answer.result["scores"] == pytest.approx(expected["scores"], abs=1e-6)
        assert answer.notice == ""
    many = service.classify_many([SPAM, HAM])
    for got, expected in zip(many, reference, strict=True):
        assert got["scores"] == pytest.approx(expected["scores"], abs=1e-6)


def test_empty_input_is_refused_with_a_clear_message(service):
    for text in ("", "   \n", None):
        with pytest.raises(ValueError, match="Type or paste a message first"):
            service.classify(text)
        with pytest.raises(ValueError, match="Type or paste a message first"):
            service.explain(text)


def test_long_input_is_cut_to_the_context_with_a_notice(service, trained_classifier_dir):
    text = " ".join([SPAM] * 20)  # ~140 tokens; the context is 64
    answer = service.classify(text)
    assert "the model reads at most 64, so only its first 64 tokens" in answer.notice
    expected = classify_scores(trained_classifier_dir, [text])[0]  # classify cuts the same way
    assert answer.result["scores"] == pytest.approx(expected["scores"], abs=1e-6)
    attribution = service.explain(text)
    assert attribution.truncated and attribution.tokens == 64


def test_model_facts_come_from_the_run_files(service, trained_classifier_dir, tiny_classifier_dir):
    facts = dict(service.facts)
    metrics = json.loads((trained_classifier_dir / "metrics.json").read_text())["test"]
    assert facts["test accuracy"].startswith(f"{metrics['accuracy']:.4f} (16 messages)")
    assert facts["test F1 (macro)"] == f"{metrics['f1_macro']:.4f}"
    assert facts["labels"] == "ham, spam"
    assert facts["initialisation"].startswith("pretrained (")
    assert facts["training data"] == "toy.txt, 56 training messages"
    model, folder = load_classifier(tiny_classifier_dir)  # a bare folder: no run files
    bare = dict(model_facts(folder, model))
    assert bare["training"] == "not recorded (no valid metrics.json in the folder)"


# ----------------------------------------------------------------------------------- attribution


def reference_drops(classifier: TextClassifier, text: str) -> tuple[int, list[float]]:
    """Leave-one-out the slow way: one forward pass per piece, no batching, no padding."""
    ids = classifier.tokenize([text])[0][: classifier.max_length]
    pieces = character_pieces(classifier.encoding, ids)
    with torch.no_grad():
        full = classifier.model(input_ids=torch.tensor([ids])).logits.softmax(-1)
        best = int(full.argmax())
        drops = []
        for start, end in pieces:
            rest = ids[:start] + ids[end:] or [classifier.encoding.eot_token]
            probs = classifier.model(input_ids=torch.tensor([rest])).logits.softmax(-1)
            drops.append(float(log_odds(full, best) - log_odds(probs, best)))
    return best, drops


def test_leave_one_out_equals_one_pass_per_piece(service):
    classifier = service.classifier
    for text in (SPAM + " see you", "£5 prize 🎉 now", "ok"):
        attribution = leave_one_out(classifier, text)
        best, drops = reference_drops(classifier, text)
        assert attribution.label == classifier.labels[best]
        assert [score for _, score in attribution.parts] == pytest.approx(drops, abs=1e-4)
        assert "".join(part for part, _ in attribution.parts) == text  # the message, in parts
        assert not attribution.grouped and not attribution.truncated


def test_pieces_keep_characters_whole(bpe_dir):
    from scratchgpt.tokenizer import load_tiktoken

    encoding = load_tiktoken(bpe_dir)
    ids = encoding.encode("a 🎉 b")
    pieces = character_pieces(encoding, ids)
    texts = [encoding.decode(ids[start:end]) for start, end in pieces]
    assert texts == ["a", " 🎉", " b"]
    assert any(end - start > 1 for start, end in pieces)  # the emoji spans several tokens
    assert group_runs([(0, 1), (1, 2), (2, 4), (4, 5), (5, 6)], 2) == [(0, 4), (4, 6)]


def test_long_texts_are_attributed_in_runs(service):
    text = " ".join(f"w{i}" for i in range(25))  # 50 pieces > MAX_PARTS
    attribution = leave_one_out(service.classifier, text)
    assert attribution.grouped and len(attribution.parts) <= MAX_PARTS
    assert "".join(part for part, _ in attribution.parts) == text


# ----------------------------------------------------------------------------------- batch files


def test_text_and_csv_files_are_read_with_their_line_numbers(tmp_path):
    txt = tmp_path / "messages.txt"
    txt.write_text("\n".join(FILE_LINES) + "\n", encoding="utf-8")
    assert read_messages(txt, 10) == ([HAM, SPAM, "ok thanks", "urgent txt stop now"], [1, 3, 4, 6])
    table = tmp_path / "messages.csv"
    with table.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["id", "Text"], [1, "a, with comma"], [2, "two\nlines"]])
    assert read_messages(table, 10) == (["a, with comma", "two\nlines"], [2, 4])


def test_bad_files_are_refused_naming_the_problem(tmp_path):
    txt = tmp_path / "big.txt"
    txt.write_text("hello\n" * 11)
    with pytest.raises(ValueError, match=r"big.txt holds 11 messages; this page classifies at "
                       r"most 10 at a time\. .*classify.py --input"):  # fmt: skip
        read_messages(txt, 10)
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(ValueError, match="empty.txt holds no message"):
        read_messages(tmp_path / "empty.txt", 10)
    (tmp_path / "x.csv").write_text("id,label\n1,ham\n")
    with pytest.raises(ValueError, match=r"x.csv: no text column.*\['id', 'label'\]"):
        read_messages(tmp_path / "x.csv", 10)
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ValueError, match="upload a .txt"):
        read_messages(tmp_path / "x.json", 10)
    (tmp_path / "latin.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="latin.txt is not UTF-8 text"):
        read_messages(tmp_path / "latin.txt", 10)


# ----------------------------------------------------------------------------------- command line


def test_help_answers_without_importing_gradio():
    code = (
        "import runpy, sys\n"
        "sys.argv = ['app.py', '--help']\n"
        "try:\n"
        f"    runpy.run_path({str(ROOT / 'scripts' / 'app.py')!r}, run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('GRADIO_IMPORTED', 'gradio' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "--model" in proc.stdout and "--max-rows" in proc.stdout
    assert "GRADIO_IMPORTED False" in proc.stdout


def test_a_missing_model_is_one_error_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "app.py"), "--model", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 2
    assert "app.py: error:" in proc.stderr and "Traceback" not in proc.stderr


# ------------------------------------------------------------------------------- served: API, page


@pytest.fixture(scope="module")
def served(trained_classifier_dir) -> str:
    """The app on 127.0.0.1 at a free port, as ``scripts/app.py`` launches it; its URL."""
    from scratchgpt.app import build_app, launch

    args = AppArguments(model=str(trained_classifier_dir), port=free_port(), max_rows=5)
    demo = launch(build_app(args), args, block=False)
    yield f"http://127.0.0.1:{args.port}/"
    demo.close()


@pytest.mark.slow
def test_gradio_client_gets_the_scores_of_classify(served, trained_classifier_dir, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(served, verbose=False)
    reference = classify_scores(trained_classifier_dir, [SPAM, HAM])
    for text, expected in zip([SPAM, HAM], reference, strict=True):
        label, _, notice = client.predict(text, api_name="/classify")
        assert label["label"] == expected["label"] and notice == ""
        scores = {c["label"]: c["confidence"] for c in label["confidences"]}
        assert scores == pytest.approx(expected["scores"], abs=1e-6)
    parts, note = client.predict(SPAM, api_name="/explain")
    assert "".join(p["token"] for p in parts) == SPAM
    assert max(abs(p["class_or_confidence"]) for p in parts) == pytest.approx(1.0)
    assert "Strongest support for" in note or "Strongest part" in note

    source = tmp_path / "messages.txt"
    source.write_text("\n".join(FILE_LINES), encoding="utf-8")
    table, download, note = client.predict(handle_file(str(source)), api_name="/classify_file")
    texts = [line for line in FILE_LINES if line.strip()]
    expected = classify_scores(trained_classifier_dir, texts)
    assert [row[0] for row in table["data"]] == [1, 3, 4, 6]  # line numbers in the file
    assert [row[1] for row in table["data"]] == [r["label"] for r in expected]
    with open(download, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["text"] for row in rows] == texts
    assert [float(row["p(spam)"]) for row in rows] == pytest.approx(
        [r["scores"]["spam"] for r in expected], abs=1e-6
    )
    assert note == "Classified 4 messages."

    too_many = tmp_path / "many.txt"
    too_many.write_text("hello\n" * 6)
    with pytest.raises(
        Exception, match="many.txt holds 6 messages; this page classifies at most 5"
    ):
        client.predict(handle_file(str(too_many)), api_name="/classify_file")


def meter_scores(page, labels: list[str]) -> dict[str, float]:
    """The exact probabilities behind the page's bars (each bar is a <meter value=...>)."""
    return {
        name: float(
            page.get_attribute(f'#prediction [data-testid="{name}-confidence-set"] meter', "value")
        )  # fmt: skip
        for name in labels
    }


@pytest.mark.slow
def test_the_page_in_a_real_browser(served, trained_classifier_dir, tmp_path):
    """Chromium types, clicks and uploads; what the page shows equals classify's answers."""
    if not Path(CHROMIUM).is_file():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: install it with `apt-get install -y chromium` "
            "(.ci/run does); this test needs a real browser and does not skip"
        )
    from playwright.sync_api import expect, sync_playwright

    reference = classify_scores(trained_classifier_dir, [SPAM])[0]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(served)
        expect(page.locator("#facts")).to_contain_text("test accuracy")

        page.locator("#message textarea").fill(SPAM)
        page.locator("#go").click()
        expect(page.locator('#prediction [data-testid="label-output-value"]')).to_have_text(
            reference["label"]
        )
        assert meter_scores(page, ["ham", "spam"]) == pytest.approx(reference["scores"], abs=1e-6)
        expect(page.locator("#scores")).to_contain_text(f"spam {reference['scores']['spam']:.4f}")
        expect(page.locator("#why-note")).to_contain_text("Strongest")
        words = page.locator("#why .token-container .text").all_inner_texts()
        assert "".join(words).split() == SPAM.split()
        page.screenshot(path=str(tmp_path / "app.png"), full_page=True)

        source = tmp_path / "messages.txt"
        source.write_text("\n".join(FILE_LINES), encoding="utf-8")
        page.get_by_role("tab", name="A file of messages").click()
        page.locator("#upload input[type=file]").set_input_files(str(source))
        page.locator("#go-file").click()
        expect(page.locator("#file-note")).to_contain_text("Classified 4 messages.")
        texts = [line for line in FILE_LINES if line.strip()]
        expected = classify_scores(trained_classifier_dir, texts)
        rows = page.locator("#results").get_by_role("row")  # header + the visible data rows
        expect(rows).to_have_count(1 + len(texts))
        cells = [row.split("\n") for row in rows.all_inner_texts()[1:]]
        assert [(int(c[0]), c[1], c[-1]) for c in cells] == [
            (line, r["label"], r["text"]) for line, r in zip([1, 3, 4, 6], expected, strict=True)
        ]
        assert [float(c[4]) for c in cells] == pytest.approx(
            [r["scores"]["spam"] for r in expected], abs=1e-6
        )
        link = page.locator("#download").get_by_role("link")
        expect(link).to_have_attribute("href", re.compile(r"messages-labels\.csv$"))
        downloaded = page.request.get(link.get_attribute("href")).text()
        assert [row["label"] for row in csv.DictReader(io.StringIO(downloaded))] == [
            r["label"] for r in expected
        ]
        page.screenshot(path=str(tmp_path / "app-file.png"), full_page=True)

        page.get_by_role("tab", name="One message").click()
        page.locator("#message textarea").fill("")
        page.locator("#go").click()  # nothing to classify
        expect(page.get_by_text("Type or paste a message first")).to_be_visible()
        browser.close()
    assert (tmp_path / "app.png").stat().st_size > 10_000
    print(f"screenshots: {tmp_path / 'app.png'}, {tmp_path / 'app-file.png'}")


def test_why_note_names_the_part_that_supported_the_label():
    from scratchgpt.app.attribution import Attribution
    from scratchgpt.app.ui import why_note

    def note(drops):
        parts = [(f"p{i}", d) for i, d in enumerate(drops)]
        return why_note(Attribution("spam", 0.99, parts, [0.5] * len(drops), 3, False, False))

    # "p0" moved the score most, but away from spam: the note names the part that supported it.
    assert "Strongest support for “spam”: “p1”" in note([-2.0, 1.0, 0.5])
    assert "Strongest part (none supported the label): “p0”" in note([-2.0, -1.0])
