"""``skipbench report DIR``: find the run folders below DIR, group them, compare them.

One module per job, in the order the report runs them:

* :mod:`.runs` gathers the run folders (config, ``metrics.json``, TensorBoard scalars, read lazily);
* :mod:`.aggregate` groups them (:mod:`.grouping`: by which keys; :mod:`.values`: one run's numbers) and
  computes the statistics (:mod:`.stats`: mean, std, Student-t CI; steps to target);
* :mod:`.render` writes ``report.md``, ``report.csv``, ``report.json`` and the printed table;
* :mod:`.plots` draws the curves and gradient-norm figures (:mod:`.curves` averages the runs' curves)
  with :mod:`skipbench.figures`, and the ``_report`` TensorBoard run;
* :mod:`.cli` parses the arguments: ``skipbench.report.cli.main(argv) -> int``.

The names both sides of a run folder agree on (statuses, files, tags) are in :mod:`skipbench.run_folder`.
"""

from ..api_modules import make_callable

make_callable(__name__)  # skipbench.report(...) is skipbench.api.report (see skipbench/api_modules.py)
