"""Training: the loop, diagnostics hooks, TensorBoard writing, checkpoints."""

from ..api_modules import make_callable

make_callable(__name__)  # skipbench.train(...) is skipbench.api.train (see skipbench/api_modules.py)
