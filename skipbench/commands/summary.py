"""``skipbench summary [overrides]``: the per-layer cost table of a model, without training.

Output shape, parameters, forward FLOPs and saved activation bytes per layer (one sample), the layers
named as in TensorBoard. ``model=a,b`` prints one table per model, so add vs concat is visible per
decoder conv. The same table is written into every run folder (``layers.md``) and TensorBoard's Text tab.
"""

from __future__ import annotations

import json

HELP = """usage: skipbench summary [overrides ...] [--json]

The per-layer cost table of a model as `skipbench train` would build it (same keys and overrides),
without training: output shape, parameters, forward FLOPs and the bytes autograd saves for backward,
per layer and per sample (one image). model=a,b prints one table per model.

Examples:
  skipbench summary model=unet_add,unet_concat model.width=16
  skipbench summary model=custom model.target=mynet.build --json
"""


def main(args: list[str]) -> int:
    from ..api import model_summary
    from ..cli_help import wants_help
    from ..train.layer_table import LayerRow, render

    if wants_help(args):
        print(HELP, end="")
        return 0
    as_json = "--json" in args
    args = [a for a in args if a != "--json"]
    models = next((a.split("=", 1)[1].split(",") for a in args if a.startswith("model=")), [None])
    rest = [a for a in args if not a.startswith("model=")]
    tables = {}
    for model in models:
        rows = model_summary(rest + ([f"model={model}"] if model else []))
        tables[rows[0]["model"] if rows else str(model)] = rows
    if as_json:
        print(json.dumps(tables, indent=1))
        return 0
    for name, rows in tables.items():
        print(render([LayerRow(**{k: v for k, v in r.items() if k != "model"}) for r in rows], name))
    return 0
