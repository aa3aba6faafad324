"""Settings of the browser app (``scripts/app.py``): which model, where to serve it, how much a
page may ask for at once. Parsing them imports neither gradio nor the model, so ``--help`` and
flag errors come back at once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from scratchgpt.arguments import ArgumentParser, arg, check, check_choices, check_device
from scratchgpt.inference.arguments import DEFAULT_BATCH_SIZE, MODEL_HELP, PREPACK_HELP
from scratchgpt.precision import DTYPE_HELP, Dtype

DEFAULT_MAX_ROWS = 1000  # a file of SMS this long classifies in ~30 s on 2 CPU cores (gpt2-small)


@dataclass(kw_only=True)
class AppArguments:
    """``scripts/app.py``: a fine-tuned classifier as a web page (gradio)."""

    model: str = arg(help=MODEL_HELP)
    host: str = arg(
        "127.0.0.1",
        "address to serve on: 127.0.0.1 (default) is this computer only, 0.0.0.0 every "
        "network interface",
    )
    port: int | None = arg(None, "port to serve on (default: the first free one from 7860)")
    share: bool = arg(False, "also open a temporary public *.gradio.live link (needs internet)")
    max_rows: int = arg(
        DEFAULT_MAX_ROWS,
        "most messages one uploaded file may hold (default: %(default)s); classify.py "
        "--input has no limit",
    )
    batch_size: int = arg(DEFAULT_BATCH_SIZE, "texts per forward pass (default: %(default)s)")
    device: str = arg("cpu", "torch device, e.g. cpu, cuda (default: %(default)s)")
    dtype: Dtype = arg("auto", DTYPE_HELP)
    no_prepack: bool = arg(False, PREPACK_HELP)
    revision: str | None = arg(None, "Hub revision (branch, tag or commit)")
    token: str | None = arg(None, "Hub token for private repos (default: HF_TOKEN or login)")

    def __post_init__(self) -> None:
        check_choices(self)
        self.model = str(self.model)
        for name in ("max_rows", "batch_size"):
            check(getattr(self, name) >= 1, name, getattr(self, name), "be >= 1")
        if self.port is not None:
            check(0 < self.port < 65536, "port", self.port, "be in 1..65535")
        check(bool(self.host.strip()), "host", self.host, "be an address such as 127.0.0.1")
        check_device(self)

    @property
    def prepack(self) -> Literal["auto"] | bool:
        return False if self.no_prepack else "auto"


def build_app_parser() -> ArgumentParser:
    """The flags of ``scripts/app.py``."""
    return ArgumentParser(
        AppArguments,
        prog="app.py",
        description="Serve a fine-tuned scratchgpt classifier (model folder or Hub repo) as a "
        "web page: type a message to see its label, every class's probability and the words "
        "that decided; upload a .txt or .csv file to label many at once. The same functions "
        "answer gradio_client calls (see the page's 'Use via API' link).",
    )
