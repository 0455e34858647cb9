"""What ``skipbench <command>`` does between the shell and the code that trains or reports.

- :mod:`.exits`: every fault leaves as one line and an exit code; the signal guard before a run starts.
- :mod:`.overrides`: what the command line may say (``~`` expanded, ``+key`` typos refused) and which
  overrides of a run folder a resume re-applies.
- :mod:`.job`: the Hydra apps and task functions: check a run before Hydra makes its folder, then run it.

:mod:`skipbench.cli` only dispatches to them.
"""
