"""What every config key means, read from one source: the schema dataclasses in :mod:`skipbench.config`.

A field's description is its trailing comment (``lr: float = 1e-3  # the learning rate``) or, without
one, the comment lines just above it; its type gives the allowed values (an enum's members, true/false,
"or null" for ``Optional``). ``skipbench train --help`` prints them beside the composed config, and
``docs/configuration.md`` is generated from them (``python -m skipbench.config_docs``; a test keeps it
current).
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import io
import re
import tokenize
import typing
from functools import lru_cache
from typing import Any

from omegaconf import DictConfig, OmegaConf

# Hydra's own keys in a node: how to build it, not what it is.
BUILDER_KEYS = {
    "_target_": "what is built from this node (an import path; Hydra's instantiate)",
    "_partial_": "built later with more arguments (the optimizer gets the parameters, the schedule the optimizer)",
    "_convert_": "how Hydra hands containers to the target (all: plain lists and dicts)",
}


@lru_cache(maxsize=None)
def field_comments(cls: type) -> dict[str, str]:
    """``{field: description}`` from the class's source: trailing comment, else the comments above."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    comments: dict[int, str] = {}
    code_lines: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            code_lines.add(tok.start[0])
    lines = source.splitlines()
    out: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        m = re.match(r"\s+(\w+)\s*:\s*[^=]+(=|$)", line)
        if not m or m[1].startswith("__"):
            continue
        text = comments.get(number, "")
        if not text:  # the comment block right above
            above, k = [], number - 1
            while k in comments and k not in code_lines:
                above.insert(0, comments[k])
                k -= 1
            text = " ".join(above)
        out.setdefault(m[1], text)
    for base in cls.__mro__[1:]:  # inherited fields keep their parents' words
        if dataclasses.is_dataclass(base):
            for k, v in field_comments(base).items():
                if not out.get(k):
                    out[k] = v
    return out


def skip_names(name: str, full: bool) -> list[str]:
    """The long-skip or block names: all of MERGES / BLOCKS (``full``: imports torch), or, for the light
    ``--help`` path, those the registered variants use (the variant table imports no torch)."""
    if full:
        from .models.blocks import BLOCKS
        from .models.merges import MERGES

        return list(MERGES if name == "long_skip" else BLOCKS)
    from .models.registry import MODELS

    return list(dict.fromkeys(getattr(v, name) for v in MODELS.values()))


def allowed_values(cls: type, name: str, full: bool = False) -> str:
    """``gaussian | salt_pepper``, ``true | false``, ``int or null``: what the type admits."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:
        return ""
    hint = hints.get(name)
    if hint is None:
        return ""
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional:
        hint = next(a for a in args if a is not type(None))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        text = " | ".join(str(m.value) for m in hint)
    elif hint is bool:
        text = "true | false"
    elif hint in (int, float, str):
        text = hint.__name__
    else:
        origin = typing.get_origin(hint)
        text = getattr(origin, "__name__", "") or ""
    if name in ("long_skip", "block"):
        text = " | ".join(skip_names(name, full))
    return f"{text} or null" if optional and text else text


def describe(cfg: DictConfig, prefix: str = "", full: bool = False) -> dict[str, tuple[Any, str, str]]:
    """Every leaf key of a composed config -> ``(default, description, allowed values)``."""
    out: dict[str, tuple[Any, str, str]] = {}
    schema = OmegaConf.get_type(cfg) if OmegaConf.is_config(cfg) else None
    notes = field_comments(schema) if dataclasses.is_dataclass(schema) else {}
    for key in cfg.keys():
        name = f"{prefix}{key}"
        node = cfg._get_node(key)
        if OmegaConf.is_dict(node) and dataclasses.is_dataclass(OmegaConf.get_type(node)):
            out.update(describe(node, f"{name}.", full))
            continue
        value = OmegaConf.to_container(node, resolve=False) if OmegaConf.is_config(node) else node._value()
        text = BUILDER_KEYS.get(str(key)) or notes.get(str(key), "")
        allowed = allowed_values(schema, str(key), full) if dataclasses.is_dataclass(schema) else ""
        out[name] = (value, text, allowed)
    return out


def annotated_yaml(cfg: DictConfig, resolve: bool = False) -> str:
    """``OmegaConf.to_yaml(cfg)`` with each leaf line followed by ``# description [allowed]``."""
    info = describe(cfg)
    stack: list[tuple[int, str]] = []
    out = []
    for line in OmegaConf.to_yaml(cfg, resolve=resolve).splitlines():
        m = re.match(r"^( *)([^\s:-][^:]*):(.*)$", line)
        if not m:
            out.append(line)
            continue
        indent, key = len(m[1]), m[2]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([k for _, k in stack] + [key])
        stack.append((indent, key))
        if path in info:
            _, text, allowed = info[path]
            note = " ".join(x for x in (text, f"[{allowed}]" if allowed else "") if x)
            line = f"{line}  # {note}" if note else line
        out.append(line)
    return "\n".join(out) + "\n"


def markdown(groups: dict[str, list[str]]) -> str:
    """``docs/configuration.md``: every key of the default config and of each group option, one table each."""
    from .config import compose_config

    def table(cfg: DictConfig, root: str) -> list[str]:
        rows = ["| key | default | allowed | what it does |", "|:--|:--|:--|:--|"]
        for key, (value, text, allowed) in describe(cfg[root] if root else cfg, f"{root}." if root else "",
                                                    full=True).items():
            shown = "null" if value is None else str(value).replace("|", "\\|")
            text = text.replace("|", "/").replace("<", "&lt;").replace(">", "&gt;")  # markdown table, no HTML
            rows.append(f"| `{key}` | `{shown}` | {allowed.replace('|', '/')} | {text} |")
        return rows

    lines = ["# Configuration keys", "",
             "Generated from the schema (`skipbench/config.py`) by `python -m skipbench.config_docs`; "
             "`skipbench train --help` prints the same descriptions. Override any key with `KEY=VALUE`, "
             "choose a group option with `GROUP=OPTION`.", ""]
    base = compose_config([])
    lines += ["## The run", ""]
    lines += [r for r in table(base, "") if not r.startswith(("| `model.", "| `dataset.", "| `task.",
                                                                  "| `optimizer.", "| `scheduler."))]
    for group in ("model", "dataset", "task", "optimizer", "scheduler"):
        for option in groups.get(group, []):
            extra = ["model.target=mynet.build"] if (group, option) == ("model", "custom") else []
            cfg = compose_config([f"{group}={option}", *extra])
            lines += ["", f"## {group}={option}", "", *table(cfg, group)]
    return "\n".join(lines) + "\n"


def main() -> None:
    from .cli_help import config_groups
    from .config import config_dir

    print(markdown(config_groups(config_dir())), end="")


if __name__ == "__main__":
    main()
