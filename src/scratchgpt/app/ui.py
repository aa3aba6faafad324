"""The page: gradio Blocks over ``DemoService``, and the same three functions as the app's API.

Events that use the model share one concurrency group (``concurrency_id="model"``, limit 1):
gradio's queue hands them to the model one at a time and shows waiting visitors their place,
instead of threads piling up on the model's lock. API names (``/classify``, ``/explain``,
``/classify_file``) are what ``gradio_client.Client(url).predict(..., api_name=...)`` calls.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr
import pandas as pd

from scratchgpt.app.attribution import MAX_PARTS, Attribution
from scratchgpt.app.service import (
    DemoService,
    read_messages,
    results_table,
    table_header,
    write_csv,
)

EXAMPLES = [
    "URGENT! You have won a £1000 cash prize. Call 09061701461 now to claim, T&Cs apply",
    "Hey, are we still on for dinner at 7 tonight?",
    "FREE entry into our weekly draw: txt WIN to 80086 to receive your award",
    "Can you pick up some milk on your way home? Thanks",
]
CSS = """
#facts { border-left: 3px solid var(--color-accent); padding-left: 1em; }
footer { visibility: hidden; }
"""
MODEL_QUEUE = "model"  # one concurrency group for every event that runs the model


def header(service: DemoService) -> str:
    labels = ", ".join(f"**{name}**" for name in service.labels)
    return f"""# {service.name}
A GPT-2 written from scratch (Raschka's *Build a Large Language Model (From Scratch)*, \
chapters 4–6), fine-tuned to sort text into {labels}. Type a message to see the label and \
every class's probability; **Why** then shows which words decided. Or upload a file to label \
many messages at once."""


def facts_markdown(service: DemoService) -> str:
    rows = [("model", f"`{service.name}`"), *service.facts]
    return "### About this model\n" + "\n".join(f"- **{name}:** {value}" for name, value in rows)


def scores_markdown(result: dict) -> str:
    parts = " · ".join(f"{name} `{p:.4f}`" for name, p in result["scores"].items())
    return f"**{result['label']}** (probabilities: {parts})"


WHY_HELP = (
    "How it is worked out: each part of the message (a word or a piece of one) is left out in "
    "turn and the model scores what remains, all in one batch. **Red** parts made the "
    "predicted label more likely, **purple** ones less likely; the colour is scaled to the "
    "strongest part (its change in log-odds)."
)


def why_note(attribution: Attribution) -> str:
    """Name the part that most supported the predicted label (a visitor asks "why spam?");
    only when no part supported it, the one that mattered most either way."""
    drops = [drop for _, drop in attribution.parts]
    if max(drops) > 0:
        index, lead = drops.index(max(drops)), f"Strongest support for “{attribution.label}”"
    else:
        index = max(range(len(drops)), key=lambda i: abs(drops[i]))
        lead = "Strongest part (none supported the label)"
    text, drop = attribution.parts[index]
    label, without = attribution.label, attribution.probability_without[index]
    lines = [
        f"{lead}: “{text.strip()}”. Without it, p({label}) goes from "
        f"{attribution.probability:.4f} to {without:.4f} (log-odds {-drop:+.2f}).",
    ]
    if attribution.grouped:
        lines.append(
            f"The message has more than {MAX_PARTS} parts, so neighbouring parts are left out "
            "together in runs."
        )
    if attribution.truncated:
        lines.append(f"Only the first {attribution.tokens} tokens (what the model read) are shown.")
    return " ".join(lines)


def highlighted(attribution: Attribution) -> list[tuple[str, float]]:
    """Parts with scores scaled to [-1, 1] by the strongest one (gradio's colour intensity)."""
    scale = max((abs(score) for _, score in attribution.parts), default=0.0) or 1.0
    return [(text, score / scale) for text, score in attribution.parts]


def refusal(reason: ValueError | str) -> gr.Error:
    """The page's message for bad input: a notice to the visitor, no traceback in the log."""
    return gr.Error(str(reason), title="Cannot classify", print_exception=False)


def build_blocks(service: DemoService) -> gr.Blocks:
    """The page over a loaded ``service`` (not launched, queue not yet configured)."""
    outputs = Path(tempfile.mkdtemp(prefix="scratchgpt-app-"))  # CSVs to download

    def classify_message(text: str) -> tuple[dict, str, str]:
        try:
            answer = service.classify(text)
        except ValueError as err:
            raise refusal(err) from None
        return answer.result["scores"], scores_markdown(answer.result), answer.notice

    def explain_message(text: str) -> tuple[list[tuple[str, float]], str]:
        try:
            attribution = service.explain(text)
        except ValueError as err:
            raise refusal(err) from None
        return highlighted(attribution), why_note(attribution)

    def classify_file(path: str | None, progress=gr.Progress(track_tqdm=True)):  # noqa: B008
        if not path:
            raise refusal("Upload a .txt or .csv file first.")
        try:
            texts, lines = read_messages(path, service.max_rows)
        except ValueError as err:
            raise refusal(err) from None
        progress(0, desc=f"classifying {len(texts)} messages")
        results = service.classify_many(texts, progress=True)
        header_row = table_header(service.labels)
        rows = results_table(results, lines, service.classifier.max_length)
        target = outputs / f"{Path(path).stem}-labels.csv"
        csv_path = write_csv(target, header_row, rows)
        cut = sum(row[-2] for row in rows)
        note = f"Classified {len(rows)} messages."
        if cut:
            note += f" {cut} were longer than the model's context and were cut (column truncated)."
        return pd.DataFrame(rows, columns=header_row), str(csv_path), note

    with gr.Blocks(
        title=f"{service.name} · scratchgpt", analytics_enabled=False, delete_cache=(3600, 3600)
    ) as demo:
        gr.Markdown(header(service))
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                with gr.Tab("One message"):
                    message = gr.Textbox(
                        label="Message",
                        lines=3,
                        max_lines=12,
                        placeholder="Type or paste a message, then press Classify (or Enter)",
                        elem_id="message",
                    )
                    with gr.Row():
                        classify_button = gr.Button("Classify", variant="primary", elem_id="go")
                        gr.ClearButton([message], value="Clear")
                    notice = gr.Markdown(elem_id="notice")
                    label = gr.Label(
                        label="Prediction",
                        num_top_classes=len(service.labels),
                        elem_id="prediction",
                    )
                    scores = gr.Markdown(elem_id="scores")
                    why = gr.HighlightedText(
                        label="Why: the parts of the message that decided",
                        show_legend=True,
                        elem_id="why",
                    )
                    gr.Markdown(WHY_HELP)
                    note = gr.Markdown(elem_id="why-note")
                    gr.Examples(EXAMPLES, inputs=[message], label="Examples (click one)")
                with gr.Tab("A file of messages"):
                    gr.Markdown(
                        "Upload a **.txt** file (one message a line) or a **.csv** file (a "
                        f"header row with a `text` column). At most {service.max_rows:,} "
                        "messages; empty lines are skipped."
                    )
                    upload = gr.File(
                        label="Messages file", file_types=[".txt", ".csv"], elem_id="upload"
                    )
                    file_button = gr.Button("Classify file", variant="primary", elem_id="go-file")
                    file_note = gr.Markdown(elem_id="file-note")
                    table = gr.Dataframe(
                        label="Labels and scores",
                        headers=table_header(service.labels),
                        interactive=False,
                        wrap=True,
                        elem_id="results",
                    )
                    download = gr.File(label="Download as CSV", elem_id="download")
            with gr.Column(scale=1, min_width=260):
                gr.Markdown(facts_markdown(service), elem_id="facts")

        classified = gr.on(
            [classify_button.click, message.submit],
            classify_message,
            inputs=message,
            outputs=[label, scores, notice],
            api_name="classify",
            concurrency_id=MODEL_QUEUE,
        )
        classified.success(
            explain_message,
            inputs=message,
            outputs=[why, note],
            api_name="explain",
            concurrency_id=MODEL_QUEUE,
        )
        file_button.click(
            classify_file,
            inputs=upload,
            outputs=[table, download, file_note],
            api_name="classify_file",
            concurrency_id=MODEL_QUEUE,
        )
    return demo
