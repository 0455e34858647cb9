"""Plant known bugs one at a time and check that the default test run catches each (docs/testing.md).

    python scripts/plant_bugs.py            # every bug; prints one line per bug: CAUGHT / SURVIVED
    python scripts/plant_bugs.py 3 7        # only bugs 3 and 7

Each bug is a one-line source edit applied to a throw-away copy of the checkout; the tests named for
it (default markers, in-process) run against that copy with ``-x``. Exit status 1 if any survived.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOOP, BLOCKS, TASKS = "skipbench/train/loop.py", "skipbench/models/blocks.py", "skipbench/tasks.py"
DIAG, MERGES, BASE = "skipbench/train/diagnostics.py", "skipbench/models/merges.py", "skipbench/data/base.py"
# The in-process test files, quickest first (-x stops at the first failure).
FAST = ["tests/models/test_skips.py", "tests/train/test_learning.py", "tests/train/test_resume.py",
        "tests/models/test_models.py", "tests/train/test_diagnostics.py", "tests/tasks/test_tasks.py",
        "tests/data/test_data.py", "tests/train/test_train.py", "tests/tasks/test_metrics.py"]

# (what, file, old, new[, old, new ...]): each `old` must occur exactly once in `file`.
BUGS: list[tuple[str, ...]] = [
    ("optimizer.step() deleted", LOOP, "            optimizer.step()\n", "            pass\n"),
    ("residual add -> subtract", "skipbench/models/shortcuts.py", "        return f + s\n", "        return f - s\n"),
    ("highway gate swapped", BLOCKS, "return t * h + (1 - t) * x", "return (1 - t) * h + t * x"),
    ("grad norms taken after the step", LOOP,
     "            diag.after_backward(log_now)\n",
     "",
     "            optimizer.step()\n", "            optimizer.step()\n            diag.after_backward(log_now)\n"),
    ("update ratios all zero", DIAG,
     "self._ratios = torch.stack(torch._foreach_norm(self._before)).float() / old.clamp_min(1e-12)",
     "self._ratios = 0 * torch.stack(torch._foreach_norm(self._before)).float() / old.clamp_min(1e-12)"),
    ("purge_step dropped on resume", LOOP, "purge_step=run.step + 1 if run.step else None", "purge_step=None"),
    ("scheduler state not restored", LOOP, "        self.scheduler.load_state_dict(state[SCHEDULER_STATE])\n", ""),
    ("sampler ignores the seed", BASE, 'seeds.generator(self.seed, "shuffle", epoch)', 'seeds.generator(0, "shuffle", epoch)'),
    ("sampler ignores its step offset (restarts at 0 on resume)", LOOP,
     "sampler.indices(step - 1)", "sampler.indices(step - 1 - start)"),
    ("noise ignores the seed", LOOP, 'seeds.derive(cfg.seed, "noise", step)', 'seeds.derive(0, "noise", step)'),
    ("initial weights ignore the seed", LOOP, 'seeds.seeded(cfg.seed, "init")', 'seeds.seeded(0, "init")'),
    ("initial weights drawn from whatever the global RNG holds", LOOP, 'with seeds.seeded(cfg.seed, "init"):', "if True:"),
    ("best / best_step not carried on resume", LOOP, "for k in COUNTERS:  # data_time", "for k in COUNTERS[2:]:  #"),
    ("train_time not carried on resume", LOOP, "for k in COUNTERS:  # data_time",
     "for k in COUNTERS[:2] + COUNTERS[3:]:  #"),
    ("dense layers see only the block input", BLOCKS, "new = layer(torch.cat(features, dim=1))",
     "new = layer(torch.cat(features[:1] + [f * 0 for f in features[1:]], dim=1))"),
    ("zero_init_residual ignored", BLOCKS, "            nn.init.zeros_(self.bn2.weight)\n", "            pass\n"),
    ("concat merge drops the encoder features", MERGES,
     "torch.cat([torch.zeros_like(skip) if self.lesioned else skip, up], dim=1)",
     "torch.cat([torch.zeros_like(skip), up], dim=1)"),
    ("add merge subtracts", MERGES, "else up + self.proj(skip)", "else up - self.proj(skip)"),
    ("confusion matrix transposed", TASKS, "torch.bincount(target.flatten() * n + pred.flatten()",
     "torch.bincount(pred.flatten() * n + target.flatten()"),
    ("SSIM K2 = 0.3", TASKS, "(0.03 * data_range) ** 2", "(0.3 * data_range) ** 2"),
    ("mIoU averaged over all classes", TASKS, "/ present.sum(1).clamp_min(1)\n        sizes",
     "/ n\n        sizes"),
]


def plant(index: int, work: Path) -> tuple[str, bool, float, str]:
    what, rel, *edits = BUGS[index]
    src = planted = (ROOT / rel).read_text()
    for old, new in zip(edits[::2], edits[1::2]):
        if planted.count(old) != 1:
            return what, False, 0.0, f"NOT PLANTED: pattern found {planted.count(old)} times in {rel}"
        planted = planted.replace(old, new)
    (work / rel).write_text(planted)
    env = {**os.environ, "PYTHONPATH": str(work), "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "--no-header", "-p", "no:warnings", *FAST],
                         cwd=work, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    (work / rel).write_text(src)
    failed = [line for line in res.stdout.splitlines() if line.startswith("FAILED")]
    return what, res.returncode == 1, elapsed, (failed[0] if failed else res.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    picked = [int(a) for a in argv] or list(range(len(BUGS)))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "tree"
        shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(".git", "mutants", "outputs", "__pycache__"))
        survived = 0
        for i in picked:
            what, caught, elapsed, detail = plant(i, work)
            survived += not caught
            print(f"{i:2d} {'CAUGHT  ' if caught else 'SURVIVED'} {what} ({elapsed:.0f} s): {detail}", flush=True)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
