"""`skipbench train --help` and docs/configuration.md describe every key, from one source: the schema."""

from __future__ import annotations

import re

import pytest

from skipbench.cli_help import config_groups, train_help
from skipbench.config import compose_config, config_dir
from skipbench.config_docs import describe, field_comments, markdown
from skipbench.config import TrainerConfig, AdamWConfig

SCHEMA_GROUPS = ("model", "dataset", "task", "optimizer", "scheduler")


@pytest.mark.long
def test_every_key_of_every_option_has_a_description():
    for group in SCHEMA_GROUPS:
        for option in config_groups(config_dir())[group]:
            missing = [k for k, (_, text, _) in describe(compose_config([f"{group}={option}"])).items() if not text]
            assert not missing, f"{group}={option}: no description for {missing} (a comment on the field in config.py)"


def test_descriptions_come_from_the_schema_comments():
    notes = field_comments(TrainerConfig)
    assert notes["eval_every"].startswith("steps between evaluations")
    assert notes["max_steps"].startswith("400: the README's")  # the comment block above the field
    assert field_comments(AdamWConfig)["weight_decay"] == "never applied to norm weights or biases"  # inherited


def test_help_prints_each_key_with_its_description_and_allowed_values():
    page = train_help("train", ["--help"])
    lines = {m[1].strip(): m[2] for m in re.finditer(r"^(\s*\w+: [^#\n]*)#(.*)$", page, re.M)}
    assert lines["eval_every: 100"].strip().startswith("steps between evaluations (and checkpoints)")
    assert "[auto | cpu | cuda]" in lines["device: auto"]
    assert "[none | concat | add | crop_concat]" in lines["long_skip: concat"]
    assert "[true | false or null]" in lines["channels_last: null"]
    assert "[int or null]" in lines["num_threads: null"]
    body = page.split("Current config")[1].split("Examples:")[0]
    leaves = [ln for ln in body.splitlines() if re.match(r"^\s*\w+: \S", ln)]
    assert leaves and all("  # " in ln for ln in leaves), [ln for ln in leaves if "  # " not in ln]


def test_help_follows_the_overrides():
    page = train_help("train", ["task=segment", "--help"])
    assert re.search(r"dice_weight: 0\.0  # loss = cross-entropy \+ dice_weight", page)


@pytest.mark.long
def test_the_docs_page_is_generated_from_the_schema_and_current():
    page = (config_dir().parent / "docs" / "configuration.md").read_text()
    assert page == markdown(config_groups(config_dir())), "regenerate: python -m skipbench.config_docs > docs/configuration.md"
    assert "| `trainer.eval_every` | `100` | int | steps between evaluations" in page
    assert "## model=custom" in page and "| `model.target` |" in page
