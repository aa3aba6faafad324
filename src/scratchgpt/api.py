"""The Python API: every command of ``scripts/`` as one function over its typed arguments.

    from scratchgpt import FinetuneArguments, finetune

    metrics = finetune(FinetuneArguments(init="random", data_file="SMSSpamCollection"))

runs the same code as ``python scripts/finetune.py --init random --data-file ...``. Nothing
calls ``sys.exit``, progress bars are ``tqdm.auto`` (widgets in Jupyter), figures are drawn
without pyplot, and ``finetune`` resets accelerate's process-wide state when it returns.

The names are listed once, in ``scratchgpt.api_names``: ``import scratchgpt`` must know them
without importing this module (``tests/test_api.py`` checks that list and these imports agree).
"""

# ruff: noqa: F401  (every import is re-exported through __all__, built from API_NAMES)

from scratchgpt.api_names import API_NAMES
from scratchgpt.app import AppArguments, build_app
from scratchgpt.data.arguments import DataArguments, PrepareDataArguments
from scratchgpt.data.prepare import prepare_data
from scratchgpt.hub.arguments import PushArguments, SpaceArguments
from scratchgpt.hub.push import push_to_hub
from scratchgpt.hub.space import push_space
from scratchgpt.inference.arguments import ClassifyArguments, EvaluateArguments, GenerateArguments
from scratchgpt.inference.classify import classify
from scratchgpt.inference.evaluate import evaluate
from scratchgpt.inference.generate import generate
from scratchgpt.training.arguments import FinetuneArguments
from scratchgpt.training.loop import finetune
from scratchgpt.weights.arguments import ConvertArguments
from scratchgpt.weights.convert import run as convert

__all__ = list(API_NAMES)
