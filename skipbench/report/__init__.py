"""``skipbench report DIR``: find the run folders below DIR, group them, compare them.

* :mod:`.runs` finds and loads run folders (config, ``metrics.json``, TensorBoard scalars);
* :mod:`.aggregate` groups runs and computes the statistics (mean, std, Student-t CI, steps to target);
* :mod:`.plots` draws the curves and gradient-norm figures (matplotlib, Agg canvas, no display);
* :mod:`.cli` parses the arguments and writes ``report.md``, ``report.csv``, ``report.json``:
  ``skipbench.report.cli.main(argv) -> int``.
"""
