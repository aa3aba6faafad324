"""The browser app: a fine-tuned classifier as a web page and an API (``scripts/app.py``).

``arguments`` (flags), ``attribution`` (which words decided), ``service`` (the loaded model and
the answers, no page), ``ui`` (the gradio page). Importing this package does not import gradio:
``build_app`` loads it when called, so ``scripts/app.py --help`` (``scratchgpt.cli.app_main``)
answers at once and the rest of the library works without the ``app`` extra installed.

    from scratchgpt import AppArguments, build_app

    build_app(AppArguments(model="outputs/sms-spam")).launch()
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scratchgpt.app.arguments import AppArguments

if TYPE_CHECKING:
    import gradio as gr

__all__ = ["AppArguments", "build_app", "launch"]


def build_app(args: AppArguments) -> gr.Blocks:
    """Load ``args.model`` once and build its page, queue configured, not launched."""
    from scratchgpt.app.service import DemoService
    from scratchgpt.app.ui import build_blocks

    demo = build_blocks(DemoService(args))
    # Events that run the model share one concurrency group (see ui); the rest run freely.
    return demo.queue(default_concurrency_limit=None)


def launch(demo: gr.Blocks, args: AppArguments, block: bool = True) -> gr.Blocks:
    """Serve ``demo`` on ``args.host:args.port``; ``block=False`` returns once it is up."""
    from scratchgpt.app.ui import CSS

    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        prevent_thread_lock=not block,
        css=CSS,
    )
    return demo
