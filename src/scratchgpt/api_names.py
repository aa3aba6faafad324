"""The Python API's names, listed once: ``scratchgpt.api`` exports exactly these (its
``__all__``), and ``import scratchgpt`` resolves them from there on first use. A module of its
own so that the package knows the names without importing the API's heavy modules.
"""

API_NAMES = (
    "AppArguments",
    "ClassifyArguments",
    "ConvertArguments",
    "DataArguments",
    "EvaluateArguments",
    "FinetuneArguments",
    "GenerateArguments",
    "PrepareDataArguments",
    "PushArguments",
    "SpaceArguments",
    "build_app",
    "classify",
    "convert",
    "evaluate",
    "finetune",
    "generate",
    "prepare_data",
    "push_space",
    "push_to_hub",
)
