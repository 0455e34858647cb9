"""Every random stream derives from ``(seed, purpose, k)`` in one place (skipbench/seeds.py)."""

from __future__ import annotations

import itertools

import pytest
import torch

from skipbench import seeds


def test_no_two_purposes_or_indices_share_a_seed():
    derived = {(p, s, k): seeds.derive(s, p, k) for p in seeds.PURPOSES for s in (0, 1, 7) for k in range(20)}
    assert len(set(derived.values())) == len(derived)
    # the old formula made step k's noise and epoch k's shuffle one seed: now they differ
    assert all(seeds.derive(s, "noise", k) != seeds.derive(s, "shuffle", k) for s, k in itertools.product(range(3), range(50)))
    assert all(0 <= v < 2**63 for v in derived.values())  # torch takes seeds below 2**63


def test_a_stream_is_the_same_in_every_process_and_call():
    import subprocess
    import sys

    here = seeds.derive(3, "init", 5)
    there = subprocess.run([sys.executable, "-c", "from skipbench import seeds; print(seeds.derive(3, 'init', 5))"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert int(there) == here == seeds.derive(3, "init", 5)  # no salted hash()
    assert torch.equal(torch.rand(4, generator=seeds.generator(3, "noise", 2)),
                       torch.rand(4, generator=seeds.generator(3, "noise", 2)))


def test_an_unknown_purpose_is_refused():
    with pytest.raises(KeyError, match="unknown random stream 'nosie'; known: init, shuffle, noise"):
        seeds.derive(0, "nosie")


def test_seeded_draws_its_stream_and_leaves_the_global_rng_alone():
    torch.manual_seed(11)
    before = torch.get_rng_state()
    with seeds.seeded(0, "init"):
        a = torch.rand(3)
    assert torch.equal(torch.get_rng_state(), before)
    torch.rand(10)  # whatever ran before does not matter
    with seeds.seeded(0, "init"):
        b = torch.rand(3)
    with seeds.seeded(1, "init"):
        c = torch.rand(3)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a, torch.rand(3, generator=torch.Generator().manual_seed(seeds.derive(0, "init"))))
