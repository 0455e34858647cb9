"""``skipbench.train(...)``, ``skipbench.sweep(...)``, ``skipbench.report(...)``: calls of the API whose
names are also the packages that do the work.

Importing a submodule sets it as an attribute of its package (``skipbench.train`` becomes the
``skipbench/train/`` package as soon as anything imports the loop), so ``skipbench.train`` cannot be a
plain function. Each of those modules instead calls :func:`make_callable`: calling the module calls the
API function of the same name, and everything inside the module stays as it was.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from . import api

        return getattr(api, self.__name__.rpartition(".")[2])(*args, **kwargs)


def make_callable(module_name: str) -> None:
    """Make ``sys.modules[module_name]`` callable as :mod:`skipbench.api`'s function of its last name."""
    sys.modules[module_name].__class__ = _CallableModule
