"""Kill rate per module from a mutmut 3 run (its ``mutants/**/*.meta`` files), as a markdown table.

    python scripts/mutation_summary.py [MUTANTS_DIR] [--only NAMES_FILE] [--survivors]

Killed = the tests failed (or timed out: a mutant that hangs the loop is caught, not missed).
``--only`` restricts to the mutant names listed in a file (to compare two runs on the same mutants).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

KILLED = {1, 3, 36, 24, -24, 152, 255}  # tests failed, or timed out
SURVIVED = {0}
NO_TESTS = {33, 5}


def load(root: Path) -> dict[str, int | None]:
    results: dict[str, int | None] = {}
    for meta in sorted(root.glob("skipbench/**/*.meta")):
        results.update(json.loads(meta.read_text()).get("exit_code_by_key", {}))
    return results


def module_of(name: str) -> str:
    return name.split(".x")[0] if ".x" in name else name.rsplit(".", 1)[0]


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv and not argv[0].startswith("--") else Path("mutants")
    results = {k: v for k, v in load(root).items() if v is not None}  # checked ones only
    if "--only" in argv:
        keep = set(Path(argv[argv.index("--only") + 1]).read_text().split())
        results = {k: v for k, v in results.items() if k in keep}
    by_module: dict[str, Counter] = {}
    for name, code in results.items():
        kind = "killed" if code in KILLED else "survived" if code in SURVIVED else "no tests" if code in NO_TESTS else "other"
        by_module.setdefault(module_of(name), Counter())[kind] += 1
    print("| module | mutants checked | killed | survived | no covering test | other | killed % |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    total = Counter()
    for module, c in sorted(by_module.items()):
        total.update(c)
        n = sum(c.values())
        print(f"| {module} | {n} | {c['killed']} | {c['survived']} | {c['no tests']} | {c['other']} | {100 * c['killed'] / n:.1f} |")
    n = sum(total.values())
    if n:
        print(f"| **all** | {n} | {total['killed']} | {total['survived']} | {total['no tests']} | {total['other']} | {100 * total['killed'] / n:.1f} |")
    if "--survivors" in argv:
        for name, code in sorted(results.items()):
            if code in SURVIVED:
                print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
