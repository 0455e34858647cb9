"""Run named mutmut mutants against chosen test files: one forked pytest per mutant.

    cd mutants && python ../scripts/mutants_against_tests.py NAMES_FILE TEST [TEST ...] [--timeout S]
    cd mutants && python ../scripts/mutants_against_tests.py NAMES_FILE --covering [--timeout S]

This is ``MUTANT_UNDER_TEST=<name> python -m pytest -x -q TEST...`` (how mutmut runs one mutant) for
many names, with torch and pytest imported once and each mutant in a forked child. ``--covering``:
the tests are, as in ``mutmut run``, those its stats (``mutmut-stats.json``) found calling the
mutated function, but run fastest first (mutmut runs them in set order), so a killed mutant costs
its fastest failing test instead of the slow training tests; a survivor still runs them all. Use it from the
``mutants/`` folder a ``mutmut run`` made (the mutated copy must come first on ``sys.path``, so leave
PYTHONPATH unset). Prints ``killed|survived|timeout  <name>  (<pytest exit code>)`` per mutant and a total.
Killed = the tests failed or errored (exit 1 or 2, or a timeout).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path


def _prefer(files: list[str], mutant: str) -> list[str]:
    """Every test function of ``files``, those whose source names the mutated function (and its class)
    first: the same tests, an order that kills sooner (a survivor still runs them all)."""
    import ast

    function = mutant.rsplit("__mutmut_", 1)[0].rsplit(".", 1)[1]
    parts = function.split("\u01c1")[1:] if "\u01c1" in function else [function[2:]]  # xǁClassǁmethod / x_function
    first, rest = [], []
    for f in files:
        source = Path(f).read_text()
        for node in ast.parse(source).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
                text = ast.get_source_segment(source, node) or ""
                (first if all(p in text for p in parts) else rest).append(f"{f}::{node.name}")
    return first + rest


def main(argv: list[str]) -> int:
    timeout = 300
    if "--timeout" in argv:
        i = argv.index("--timeout")
        timeout = int(argv[i + 1])
        argv = argv[:i] + argv[i + 2:]
    names_file, tests = argv[0], argv[1:]
    names = [n for n in Path(names_file).read_text().split() if n]
    covering = tests == ["--covering"]
    if covering:
        import json

        stats = json.loads(Path("mutmut-stats.json").read_text())
        by_function, duration = stats["tests_by_mangled_function_name"], stats["duration_by_test"]
    sys.path.insert(0, os.getcwd())  # the mutated copy
    import pytest  # imported once, before forking

    # Warm up like mutmut's fork server: collect every test file once here, so each child finds the
    # test modules, skipbench (mutated copy, trampolines read MUTANT_UNDER_TEST at call time), torch
    # and Hydra already imported.
    files = sorted({t.split("::")[0] for t in tests} if not covering else {t.split("::")[0] for ts in by_function.values() for t in ts})
    with open(os.devnull, "w") as null:
        saved = os.dup(1), os.dup(2)
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *files])
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)

    counts = {"killed": 0, "survived": 0, "timeout": 0}
    for name in names:
        if covering:
            tests = sorted(by_function.get(name.rsplit("__mutmut_", 1)[0], []), key=lambda t: duration.get(t, 0.0))
            if not tests:
                counts["no tests"] = counts.get("no tests", 0) + 1
                print(f"no-tests {name}", flush=True)
                continue
        run_tests = tests if covering else _prefer(tests, name)
        pid = os.fork()
        if pid == 0:
            os.environ["MUTANT_UNDER_TEST"] = name
            signal.alarm(timeout)
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 1)
                os.dup2(null.fileno(), 2)
                code = pytest.main(["-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *run_tests])
            os._exit(int(code))
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            kind, code = "timeout", -os.WTERMSIG(status)
        else:
            code = os.WEXITSTATUS(status)
            kind = "survived" if code == 0 else "killed" if code in (1, 2) else f"other{code}"
        counts[kind] = counts.get(kind, 0) + 1
        print(f"{kind:8s} {name} ({code})", flush=True)
    print(" ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
