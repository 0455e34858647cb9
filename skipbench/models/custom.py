"""``model=custom model.target=<import path>``: your own ``nn.Module``, trained and measured like ours.

``model.target`` names an ``nn.Module`` class or a function returning one (``mypkg.nets.TinyNet``,
``mynet.build`` or ``mynet:build``); it is called with the keyword arguments it accepts among
``in_channels``, ``out_channels`` and ``head`` (``"pixels"``: the model outputs ``[N, out_channels, H, W]``;
``"classes"``: ``[N, out_channels]``), plus ``model.kwargs``. The run is labelled by ``model.name``
(default: the class or ``module.function`` of the target) in the console, the run folder, TensorBoard
and the report. Its layers are named from its own module tree (top-level children as levels, in
registration order): :func:`skipbench.train.diagnostics.skeleton_layers`.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from typing import Any, Mapping

from ..errors import ConfigError

CUSTOM = "custom"  # the option name: model=custom
PASSED = ("in_channels", "out_channels", "head")  # what a target may take from the run


def label(target: str) -> str:
    """``mypkg.nets.TinyNet`` -> ``TinyNet``; ``mynet.build`` / ``mynet:build`` -> ``mynet.build``."""
    parts = [p for p in str(target).replace(":", ".").split(".") if p]
    if not parts:
        return CUSTOM
    return parts[-1] if parts[-1][:1].isupper() or len(parts) == 1 else ".".join(parts[-2:])


def load_target(target: str) -> Any:
    """The object ``target`` names; a ``ConfigError`` naming ``model.target`` if it cannot be imported."""
    module_name, sep, attr = str(target).partition(":")
    if not sep:
        module_name, _, attr = str(target).rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"model.target={target}: give an import path like mypkg.nets.TinyNet or mynet.build")
    if "" not in sys.path and "." not in sys.path:  # `python -m` and the console script: modules next to you too
        sys.path.append("")
    try:
        module = importlib.import_module(module_name)
    except ImportError as ex:
        raise ConfigError(f"model.target={target}: cannot import {module_name} ({ex}); is it on PYTHONPATH?") from None
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"model.target={target}: {module_name} has no {attr}") from None
    if not callable(obj):
        raise ConfigError(f"model.target={target}: {attr} is a {type(obj).__name__}, not a class or function")
    return obj


def build_custom(target: str, in_channels: int, out_channels: int, head: str = "pixels", name: str | None = None,
                 kwargs: Mapping[str, Any] | None = None) -> Any:
    """Call the user's target with what it accepts of (in_channels, out_channels, head) and ``kwargs``."""
    import torch

    factory = load_target(target)
    given = {"in_channels": in_channels, "out_channels": out_channels, "head": head}
    try:
        params = inspect.signature(factory).parameters
        takes_all = any(p.kind is p.VAR_KEYWORD for p in params.values())
        passed = {k: v for k, v in given.items() if takes_all or k in params}
    except (TypeError, ValueError):  # no signature to read (a builtin): pass nothing of ours
        passed = {}
    try:
        model = factory(**passed, **dict(kwargs or {}))
    except TypeError as ex:
        raise ConfigError(f"model.target={target}: calling it failed ({ex}); it may take in_channels, "
                          "out_channels, head and the keys of model.kwargs") from None
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(f"model.target={target}: returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def check_output(model: Any, sample: Any, out_channels: int, head: str, target: str) -> None:
    """The model's output for ``sample`` (``[1, C, H, W]``, any device: meta costs nothing) must be what
    the task scores: ``[1, out_channels, H, W]`` (pixels) or ``[1, out_channels]`` (classes)."""
    import torch

    model.eval()  # a shape check, not a training step (no batch statistics, no dropout)
    with torch.no_grad():
        try:
            out = model(sample)
        except Exception as ex:  # the user's forward on our input: say which input
            raise ConfigError(f"model.target={target}: its forward failed on an input of shape "
                              f"{list(sample.shape)} ({type(ex).__name__}: {' '.join(str(ex).split())[:160]})") from None
    want = [1, out_channels, *sample.shape[2:]] if head == "pixels" else [1, out_channels]
    got = list(getattr(out, "shape", []))
    if got != want:
        raise ConfigError(f"model.target={target}: output shape {got or type(out).__name__} for input "
                          f"{list(sample.shape)}; this task needs {want}")


def parameter_notes(model: Any) -> list[str]:
    """What differs from one tensor per layer: weight-tied (shared) parameters, counted once."""
    seen: dict[int, str] = {}
    notes = []
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            notes.append(f"{name} is the same tensor as {seen[id(p)]} (weight-tied: counted and updated once)")
        else:
            seen[id(p)] = name
    return notes


def unused_parameters(model: Any) -> list[str]:
    """Parameters that got no gradient from the last backward (not used by forward)."""
    return [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]


def is_custom(model_cfg: Any) -> bool:
    """Whether a ``model`` config node is ``model=custom`` (``keys()``: ``in`` is False while target is unset)."""
    return "target" in model_cfg.keys()
