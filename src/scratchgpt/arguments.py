"""Typed command-line arguments: dataclasses parsed by ``transformers.HfArgumentParser``.

Every command's flags are the fields of a dataclass (``help`` and argparse extras in
``metadata``), validated in its ``__post_init__`` with errors that name the flag and the value.
The same dataclass is what the Python API takes, so a notebook and a script run the same code.

Two habits of ``HfArgumentParser`` are changed here, so the scripts keep the flags they had:
it adds an underscore twin of every flag (``--batch_size`` next to ``--batch-size``), which we
drop, and it turns a ``bool`` field into ``--flag [BOOL]``, which would swallow a following
positional argument: switches stay plain ``store_true`` flags.

Recipe files: ``--config FILE.yaml`` reads field values from a YAML mapping; flags given on the
command line override them. :func:`save_config` writes the resolved arguments of a run in the
same format, so ``--config`` of that file reproduces the run.

Fast start: ``--help`` and argument errors must not wait for torch. ``HfArgumentParser``'s module
needs only the standard library and yaml, but ``from transformers import HfArgumentParser``
first runs ``transformers/__init__``, which scans the whole package and imports numpy and
huggingface_hub (~1 s); :func:`_hf_argparser` loads the module itself, under its own name.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib
import importlib.util
import math
import os
import re
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from scratchgpt.files import UsageError, atomic_write, read_text


def _hf_argparser() -> types.ModuleType:
    """``transformers.hf_argparser``, without running ``transformers/__init__`` if it has not run.

    The module is registered as ``transformers.hf_argparser``, so a later ``import transformers``
    finds this same module (one ``HfArgumentParser`` class). Should a future release give it
    imports from the package, they simply import ``transformers`` then: slower, still correct.
    """
    name = "transformers.hf_argparser"
    if "transformers" in sys.modules or name in sys.modules:
        return importlib.import_module(name)
    package = importlib.util.find_spec("transformers")
    if package is None or not package.submodule_search_locations:
        return importlib.import_module(name)  # raises the usual ModuleNotFoundError
    location = Path(package.submodule_search_locations[0]) / "hf_argparser.py"
    spec = importlib.util.spec_from_file_location(name, location)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


HfArgumentParser = _hf_argparser().HfArgumentParser

# Field metadata read here rather than passed to argparse.
GROUP = "group"  # the help group of a field that lives outside its class's group
FLAGS = "flags"  # option strings replacing ``--field-name`` (e.g. ``--from``)
ARGPARSE_OVERRIDES = ("type", "nargs", "metavar", "choices", "action", "const")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except the uninformative ones (unset options, off switches)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or "%(default)" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def arg(default: Any = dataclasses.MISSING, help: str = "", **metadata: Any) -> Any:
    """A dataclass field with its ``--help`` text (``HfArg`` without the aliases).

    A list default is copied per instance; ``metadata`` holds argparse extras (``metavar``,
    ``nargs``, ``type``) and :data:`GROUP` / :data:`FLAGS`.
    """
    if isinstance(default, list):
        value = list(default)
        return dataclasses.field(
            default_factory=lambda: list(value), metadata={"help": help, **metadata}
        )
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


def flag_name(name: str) -> str:
    """``batch_size`` -> ``--batch-size``: how error messages name a field."""
    return "--" + name.replace("_", "-")


def check(condition: bool, name: str, value: Any, requirement: str) -> None:
    """Raise ``UsageError("--flag-name must <requirement>, got <value>")`` (a ``ValueError``)
    unless ``condition``."""
    if not condition:
        raise UsageError(f"{flag_name(name)} must {requirement}, got {value!r}")


def check_number(
    instance: object,
    name: str,
    low: float,
    high: float = math.inf,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> None:
    """``instance.<name>`` (unless None) is a finite number from ``low`` to ``high``, the ends
    included unless ``open_low``/``open_high``: a learning rate of -1, ``nan`` or ``inf`` is
    refused before any work, naming the flag and the value."""
    value = getattr(instance, name)
    if value is None:
        return
    number = isinstance(value, int | float) and math.isfinite(value)
    above = value > low if open_low else value >= low
    below = value < high if open_high else value <= high
    if high == math.inf:
        wanted = f"be {'>' if open_low else '>='} {low:g}"
    else:
        wanted = f"be in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
    check(number and above and below, name, value, wanted)


DEVICE_PATTERN = re.compile(r"(cpu|cuda|mps|xpu|hpu|npu|mtia)(:\d+)?")


def check_device(instance: object, name: str = "device") -> None:
    """``instance.<name>`` names a torch device this machine has (``cpu``, ``cuda``,
    ``cuda:1``, ``mps``, ...). Only a non-CPU device imports torch to ask: ``cpu`` stays fast."""
    value = str(getattr(instance, name))
    setattr(instance, name, value)
    check(
        bool(DEVICE_PATTERN.fullmatch(value)),
        name,
        value,
        "be a torch device such as cpu, cuda, cuda:0 or mps",
    )
    if value != "cpu" and (problem := device_problem(value)):
        raise UsageError(f"{flag_name(name)} {value}: {problem}")


def device_problem(device: str) -> str | None:
    """Why ``device`` cannot be used here, or None."""
    import torch

    kind, _, index = device.partition(":")
    if kind == "cpu":
        return None
    if kind == "mps":
        available, count = torch.backends.mps.is_available(), 1
    else:
        backend = getattr(torch, kind, None)
        available = bool(backend is not None and backend.is_available())
        count = backend.device_count() if available else 0
    if not available:
        return f"this machine has no {kind} device that torch can use; use --device cpu"
    if index and int(index) >= count:
        return f"there are {count} {kind} device(s), numbered from 0; use --device {kind}:0"
    return None


def check_input_path(
    instance: object, name: str, kind: str = "file", noun: str | None = None
) -> None:
    """``instance.<name>`` (unless None or ``-``) exists and is a ``kind``: ``file`` (anything
    readable but a folder: devices and pipes too), ``folder``, or ``any``; ``noun`` names it
    in the message (default: the kind)."""
    value = getattr(instance, name)
    if value is None or str(value) == "-":
        return
    path = Path(value)
    where = f"{flag_name(name)} {value}"
    if not path.exists():
        noun = noun or ("file or folder" if kind == "any" else kind)
        raise UsageError(f"{where}: no such {noun}")
    if kind == "file" and path.is_dir():
        raise UsageError(f"{where} is a folder; give a file")
    if kind == "folder" and not path.is_dir():
        raise UsageError(f"{where} is a file; give a folder")


MAX_SEED = 2**32 - 1  # numpy's (and so accelerate's set_seed's) largest seed


def check_output_name(instance: object, name: str) -> None:
    """``instance.<name>`` (unless None) names a folder to write: not empty, ``.`` or ``/``,
    which have no name to give a temporary sibling or a run folder."""
    value = getattr(instance, name)
    if value is not None:
        given = Path(value).name  # "" for "", "." and "/"
        check(given not in ("", ".."), name, str(value), "name a folder")


def check_choices(instance: object) -> None:
    """Every ``Literal`` field holds one of its values (argparse checks flags, not values from
    ``--config`` files or Python callers)."""
    literals = _literal_fields(type(instance))
    for field in dataclasses.fields(instance):
        value, choices = getattr(instance, field.name), literals.get(field.name)
        if choices is not None and value not in choices:
            flag = field.metadata.get(FLAGS, [flag_name(field.name)])[0]  # e.g. --from
            allowed = ", ".join(str(c) for c in choices if c is not None)
            raise UsageError(f"{flag} must be one of {allowed}, got {value!r}")


@functools.cache
def _literal_fields(cls: type) -> dict[str, tuple]:
    """``{field: allowed values}`` for the ``Literal`` (or ``Literal | None``) fields of ``cls``."""
    found = {}
    for name, hint in typing.get_type_hints(cls).items():
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        parts = typing.get_args(hint) if union else (hint,)
        for part in parts:
            if typing.get_origin(part) is typing.Literal:
                none = (None,) if type(None) in parts else ()
                found[name] = (*typing.get_args(part), *none)
    return found


def super_post_init(instance: object, cls: type) -> None:
    """Run the next ``__post_init__`` in the MRO: each part of a combined dataclass (model,
    data, training, ...) checks its own fields."""
    parent = getattr(super(cls, instance), "__post_init__", None)
    if parent is not None:
        parent()


def as_path(value: str | os.PathLike[str] | None) -> Path | None:
    return None if value is None else Path(value)


class ArgumentParser(HfArgumentParser):
    """``HfArgumentParser`` with the scripts' flag names, help groups and ``--config``."""

    def __init__(
        self,
        dataclass_type: type,
        *,
        config: bool | str = False,
        **kwargs: Any,
    ) -> None:
        """``config``: add ``--config FILE.yaml`` (a string is appended to its help)."""
        kwargs.setdefault("formatter_class", HelpFormatter)
        self.config = bool(config)
        super().__init__(dataclass_type, **kwargs)
        if config:
            note = f" {config}" if isinstance(config, str) else ""
            self.add_argument(
                "--config",
                metavar="FILE.yaml",
                help="a recipe: YAML with any of these settings (field names with underscores, "
                "e.g. batch_size: 8); flags on the command line override it." + note,
            )

    def _add_dataclass_arguments(self, dtype: type) -> None:
        # Each field goes into the help group of the class that defines it, so one flat
        # dataclass built from parts (model, data, training, ...) keeps the groups.
        groups: dict[str, Any] = {}
        hints = typing.get_type_hints(dtype)
        for field in dataclasses.fields(dtype):
            if not field.init:
                continue
            field.type = hints[field.name]
            name = field.metadata.get(GROUP) or _owner_group(dtype, field.name)
            if name and name not in groups:
                groups[name] = self.add_argument_group(name)
            self._parse_dataclass_field(groups.get(name, self), field)

    @staticmethod
    def _parse_dataclass_field(parser: Any, field: dataclasses.Field) -> None:
        calls: list[tuple[tuple, dict]] = []
        recorder = _Recorder(calls)
        saved = field.metadata
        metadata = {k: v for k, v in saved.items() if k not in (GROUP, FLAGS)}
        field.metadata = metadata  # HfArgumentParser passes metadata on to argparse
        try:
            HfArgumentParser._parse_dataclass_field(recorder, field)
        finally:
            field.metadata = saved
        for options, kwargs in calls:
            options = [o for o in options if "_" not in o.removeprefix("--")]
            if saved.get(FLAGS):
                options = list(saved[FLAGS])
                kwargs["dest"] = field.name
            if kwargs.get("type") is not None and field.type is bool and "nargs" in kwargs:
                # A switch: present or not, as before (no optional value to swallow texts).
                for key in ("type", "nargs", "const"):
                    kwargs.pop(key, None)
                kwargs["action"] = "store_true"
            kwargs.update({k: metadata[k] for k in ARGPARSE_OVERRIDES if k in metadata})
            if kwargs.get("nargs") is None:
                kwargs.pop("nargs", None)
            parser.add_argument(*options, **kwargs)

    def error(self, message: str) -> typing.NoReturn:
        """One line ``<prog>: error: <message>`` and status 2: argparse's usage line before it
        would make every bad flag two lines (``--help`` still shows the usage)."""
        text = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {text}\n")

    def parse(self, argv: Sequence[str] | None = None) -> tuple[Any, Any]:
        """Parse ``argv`` (after ``--config``'s values) into the dataclass and any extras.

        Returns ``(arguments, extra)``: ``extra`` holds positional arguments added with
        ``add_argument`` (as attributes), or is ``None``. A value the dataclass refuses
        exits with status 2 and the dataclass's message, as argparse errors do.
        """
        try:
            if self.config:
                self._apply_config(argv)
            parsed = self.parse_args_into_dataclasses(argv, look_for_args_file=False)
        except (ValueError, TypeError) as err:  # TypeError: a --config value of the wrong type
            self.error(str(err))
        except KeyboardInterrupt:  # a device check may be importing torch
            self.exit(130, f"{self.prog}: interrupted: nothing was done\n")
        return parsed[0], (parsed[1] if len(parsed) > 1 else None)

    def _apply_config(self, argv: Sequence[str] | None) -> None:
        early = argparse.ArgumentParser(add_help=False)
        early.add_argument("--config")
        known, _ = early.parse_known_args(argv)
        if not known.config:
            return
        try:
            values = load_config(known.config, self.dataclass_types[0])
        except (OSError, ValueError) as err:
            self.error(str(err))
        for action in self._actions:
            if action.dest in values:
                action.required = False  # given by the file
        self.set_defaults(**values)


class _Recorder:
    """Stands in for an argparse group while ``HfArgumentParser`` builds one field's flags."""

    def __init__(self, calls: list) -> None:
        self.calls = calls

    def add_argument(self, *options: str, **kwargs: Any) -> None:
        self.calls.append((options, kwargs))


def _owner_group(dtype: type, name: str) -> str | None:
    """The ``_argument_group_name`` of the most derived class that declares field ``name``."""
    for klass in dtype.__mro__:
        if name in klass.__dict__.get("__annotations__", {}):
            return klass.__dict__.get("_argument_group_name")
    return None


# ----------------------------------------------------------------------------- recipe files


def load_config(path: str | os.PathLike[str], dataclass_type: type) -> dict[str, Any]:
    """The field values in a YAML recipe; unknown names are refused, naming them and the file."""
    text = read_text(path, f"--config {path}")  # a BOM dropped; a folder or bad UTF-8 named
    try:
        values = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f": line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise UsageError(f"--config {path}{where}: not valid YAML ({problem})") from None
    if not isinstance(values, dict):
        raise UsageError(f"--config {path}: expected a mapping of setting: value")
    fields = {f.name for f in dataclasses.fields(dataclass_type) if f.init}
    values = {str(k).replace("-", "_"): v for k, v in values.items()}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise UsageError(f"--config {path}: unknown settings {unknown}")
    hints = typing.get_type_hints(dataclass_type)
    for name, value in values.items():
        if (wanted := _config_type_problem(hints[name], value)) is not None:
            raise UsageError(f"--config {path}: {name} must be {wanted}, got {value!r}")
    return values


def _config_type_problem(hint: Any, value: Any) -> str | None:
    """What a YAML value should have been, if it cannot be a value of ``hint`` (a list where
    a number goes would otherwise end in a ``TypeError`` deep in a check)."""
    parts = (
        typing.get_args(hint)
        if typing.get_origin(hint) in (typing.Union, types.UnionType)
        else (hint,)
    )
    if value is None:
        return None if type(None) in parts else "set (not empty)"
    for part in parts:
        origin = typing.get_origin(part) or part
        if origin is typing.Literal or origin is Path and isinstance(value, str):
            return None
        if origin is float and isinstance(value, int | float) and not isinstance(value, bool):
            return None
        if origin in (int, str, bool, list) and type(value) is origin:
            return None
        if origin is str and isinstance(value, int | float) and not isinstance(value, bool):
            return None  # a revision or config name YAML read as a number
    names = {float: "a number", int: "a whole number", str: "text", bool: "true or false"}
    return " or ".join(
        names.get(typing.get_origin(p) or p, "a list") for p in parts if p is not type(None)
    )


def to_config(arguments: Any) -> dict[str, Any]:
    """The dataclass's settings as plain YAML values (paths as strings)."""
    values = {}
    for field in dataclasses.fields(arguments):
        if field.init:
            value = getattr(arguments, field.name)
            values[field.name] = str(value) if isinstance(value, Path) else value
    return values


def save_config(arguments: Any, path: str | os.PathLike[str]) -> Path:
    """Write resolved settings (a dataclass, or its :func:`to_config` values) as a recipe:
    ``--config path`` reproduces the run."""
    path = Path(path)
    values = arguments if isinstance(arguments, Mapping) else to_config(arguments)
    text = yaml.safe_dump(dict(values), sort_keys=False, default_flow_style=None)
    return atomic_write(path, text)
