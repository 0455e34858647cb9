"""Tune the learning rate of each variant with ``experiment=tune_lr`` (Hydra's Optuna sweeper) and write
each variant's best lr to ``configs/tuned/<task>_<dataset>.yaml``, which ``tuned=<task>_<dataset>`` reads:

    python scripts/tune_lr.py                                   # the README's five variants, denoise shapes
    python scripts/tune_lr.py --models resnet --trials 12       # one more / another budget; merged into the file
    skipbench train experiment=compare_skips tuned=denoise_shapes \
        'hydra.sweeper.params.model="autoencoder,unet_concat,unet_add,resnet,densenet"'   # each at its own lr

One Optuna study per variant, one trial after another (``n_jobs: 1``): TPE learns from each trial.
Extra ``KEY=VALUE`` arguments go to every trial (e.g. ``trainer.num_threads=1``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from skipbench.run_folder import CONFIG, METRICS, headline_value

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ["autoencoder", "unet_concat", "unet_add", "resnet", "densenet"]
HEADER = """# @package _global_
# Each model's learning rate, tuned by scripts/tune_lr.py (experiment=tune_lr: Optuna TPE, log-uniform lr in
# [1e-4, 1e-2]). Use it with one override:  skipbench train ... tuned={name}
# A model missing here is refused (tune it with: python scripts/tune_lr.py --models <model>).
"""


def trials(sweep_dir: Path) -> list[tuple[float, float | None, str]]:
    """``(lr, final headline metric or None, status)`` of every trial below a sweep folder."""
    out = []
    for metrics in sorted(sweep_dir.glob(f"*/{METRICS}")):
        m = json.loads(metrics.read_text())
        cfg = OmegaConf.load(metrics.parent / CONFIG)
        value = headline_value(m)
        out.append((float(cfg.optimizer.lr), value, m.get("status", "?")))
    return sorted(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(VARIANTS), help="comma-separated model names")
    ap.add_argument("--task", default="denoise")
    ap.add_argument("--dataset", default="shapes")
    ap.add_argument("--trials", type=int, default=8, help="Optuna trials per model")
    ap.add_argument("--steps", type=int, default=200, help="training steps per trial")
    ap.add_argument("--out", default="outputs/tune_lr", help="sweep folders go to OUT/<task>_<dataset>/<model>")
    ap.add_argument("--tuned-dir", default=str(ROOT / "configs" / "tuned"), help="where <task>_<dataset>.yaml goes")
    ap.add_argument("overrides", nargs="*", help="extra KEY=VALUE overrides for every trial")
    args = ap.parse_args()

    name = f"{args.task}_{args.dataset}"
    tuned_file = Path(args.tuned_dir) / f"{name}.yaml"
    tuned = OmegaConf.to_container(OmegaConf.load(tuned_file)).get("tuned_lr", {}) if tuned_file.exists() else {}
    # Keep the notes of models tuned before (lines "# <model>: best ...") unless they are tuned again.
    old_lines = tuned_file.read_text().splitlines() if tuned_file.exists() else []
    notes = {line[2:].split(":")[0]: line[2:] for line in old_lines if line.startswith("# ") and ": best " in line}
    for model in args.models.split(","):
        sweep_dir = Path(args.out) / name / model
        cmd = [sys.executable, "-m", "skipbench.cli", "train", "experiment=tune_lr", f"model={model}",
               f"task={args.task}", f"dataset={args.dataset}", f"hydra.sweeper.n_trials={args.trials}",
               f"trainer.max_steps={args.steps}", f"hydra.sweep.dir={sweep_dir}", *args.overrides]
        print("+", " ".join(cmd), flush=True)
        start = time.perf_counter()
        if subprocess.run(cmd, cwd=ROOT).returncode != 0:
            print(f"tune_lr: {model}: the sweep failed; see {sweep_dir}", file=sys.stderr)
            return 1
        best = OmegaConf.load(sweep_dir / "optimization_results.yaml")
        lr = float(best.best_params["optimizer.lr"])
        tuned[model] = float(f"{lr:.3g}")
        notes[model] = (f"{model}: best {best.best_value:.3f} at lr {lr:.3g} of {args.trials} trials x {args.steps} "
                        f"steps, {time.perf_counter() - start:.0f} s")
        for t_lr, value, status in trials(sweep_dir):
            print(f"  {model}  lr {t_lr:.3g}  ->  {value if value is None else round(value, 3)}  ({status})")
        print("  " + notes[model], flush=True)
        # Written after every model, so an interrupted tuning keeps what it found.
        body = OmegaConf.to_yaml(OmegaConf.create({"tuned_lr": tuned, "optimizer": {"lr": "${tuned_lr.${model.name}}"}}))
        tuned_file.parent.mkdir(parents=True, exist_ok=True)
        tuned_file.write_text(HEADER.format(name=name) + "".join(f"# {n}\n" for n in notes.values()) + body)
    print(f"wrote {tuned_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
