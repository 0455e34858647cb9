"""The literature's claims about skip connections, each reproduced by one preset with a computed verdict.

``skipbench reproduce [CLAIM ...]`` (:mod:`.reproduce`) runs each claim's preset (``configs/experiment/
claim_*.yaml``) or reuses its finished sweep, measures what the claim is about (:mod:`.claims`), decides
(:mod:`.verdict`) and writes ``docs/results.md``.
"""

from .claims import CLAIMS, Claim, Measured, Row, known_claims, select_claims  # noqa: F401
