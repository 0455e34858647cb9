"""unet_crop (valid convs): every crop is exact at every size the model accepts; other sizes are refused.

Alignment is checked by following pixel *positions* (in input pixels) through the network, independently
of the model code: a valid 3x3 conv moves a map's first pixel one pitch inwards, a 2x2 max-pool to the
middle of its first window (and floors the size), a 2x2 stride-2 up-conv back by a quarter of the old pitch.
The crops themselves are the model's and the tasks' own functions (``match_size``, ``crop_to``).
"""

from __future__ import annotations

import pytest
import torch

from skipbench.config import ConfigError
from skipbench.models import build_model
from skipbench.models.blocks import crop_to
from skipbench.models.encdec import check_valid_size, valid_output_size
from skipbench.models.merges import match_size
from skipbench.train.data_cache import forget_loaded
from skipbench.train.validate import check_runnable

from conftest import compose


def positions(size: int, depth: int, blocks: int) -> tuple[list[tuple[float, float, int]], tuple[float, float, int]]:
    """``(start, pitch, size)`` of each decoder level's upsampled map and of its skip, and of the output."""
    convs = 2 * blocks  # 3x3 convs per stage

    def stage(m):
        start, pitch, n = m
        return start + convs * pitch, pitch, n - 2 * convs

    m = stage((0.0, 1.0, size))
    skips = []
    for _ in range(depth):
        skips.append(m)
        start, pitch, n = m
        m = stage((start + pitch / 2, 2 * pitch, n // 2))
    levels = []
    for skip in reversed(skips):
        start, pitch, n = m
        up = (start - pitch / 4, pitch / 2, 2 * n)
        levels.append((up, skip))
        m = stage(up)  # the merge crops the skip to the up-map: the up-map's position goes on
    return levels, m


def skip_offset(big: int, small: int) -> int:
    """Where the model's skip crop (``match_size``) starts, in pixels of the bigger map."""
    return int(match_size(torch.arange(big).view(1, 1, 1, big).expand(1, 1, small, big), (small, small))[0, 0, 0, 0])


def target_offset(big: int, small: int) -> int:
    """Where the tasks' target crop (``crop_to``) starts."""
    return int(crop_to(torch.arange(big).view(1, 1, 1, big).expand(1, 1, small, big), torch.zeros(1, 1, small, small))[0, 0, 0, 0])


@pytest.mark.parametrize("depth,blocks", [(1, 1), (2, 1), (3, 1), (4, 1), (2, 2)])
def test_centre_crops_are_exact_at_every_accepted_size(depth, blocks):
    accepted = misaligned = 0
    for size in range(8, 260):
        if valid_output_size(size, depth, blocks) < 1:
            continue
        levels, out = positions(size, depth, blocks)
        exact = all(skip_offset(skip[2], up[2]) == (up[0] - skip[0]) / up[1] for up, skip in levels)
        exact = exact and target_offset(size, out[2]) == out[0]  # target crop vs the output's position
        if check_valid_size(size, depth, blocks) is None:
            accepted += 1
            assert exact, size
        else:
            misaligned += not exact
    assert accepted >= 3
    assert misaligned > 0 or depth == 1  # refused sizes are ones a crop gets wrong (depth 1 refuses none)


@pytest.mark.parametrize("size,depth,message", [(66, 2, "level 1.*use 65 or 68 px"), (67, 2, "use 65 or 68 px"),
                                                (94, 3, "level 1.*use 93 or 100 px")])
def test_model_refuses_sizes_where_a_pool_floors(size, depth, message):
    model = build_model("unet_crop", width=1, depth=depth)
    with pytest.raises(ValueError, match=message):
        model(torch.zeros(1, 1, size, size))


def test_classifier_with_valid_convs_accepts_any_size():
    model = build_model("unet_crop", width=1, depth=2, head="classes", out_channels=3)
    assert model(torch.zeros(1, 1, 66, 66)).shape == (1, 3)  # no decoder: nothing to align


def test_config_refuses_with_the_nearest_sizes():
    small = ["model=unet_crop", "model.depth=2", "dataset.train_size=32", "dataset.val_size=8", "trainer.batch_size=8"]
    with pytest.raises(ConfigError, match="66 px.*use 65 or 68 px"):
        check_runnable(compose([*small, "dataset.size=66"]), None)
    for accepted in (["dataset.size=65"], ["dataset.size=66", "task=classify"]):
        cfg = compose([*small, *accepted])
        check_runnable(cfg, None)
        forget_loaded()  # the data it keeps for the run: let it go


def test_odd_first_pool_is_exact_in_the_model():
    # depth 1 at 33 px: the pool floors 29 -> 14; the skip crop must take the 9 extra pixels as 4 before and
    # 5 after, like the target crop (before the fix it took 5 before: one pixel off).
    assert skip_offset(29, 20) == target_offset(29, 20) == 4


# ================================================================== found by mutation testing (round 2)
# Written from mutmut's survivors in issue 15m (docs/testing.md), formerly tests/test_mutants_models.py.
@pytest.mark.parametrize("shape,ok", [((65, 66), False), ((66, 65), False), ((65, 68), True), ((68, 65), True)])
def test_valid_conv_size_check_covers_both_sides(shape, ok):
    model = build_model("unet_crop", width=1, depth=2)
    x = torch.zeros(1, 1, *shape)
    if ok:
        # valid_output_size by hand: 65 -> 61, 30 -> 26, 13 -> 9 -> 18 - 4 = 14 -> 28 - 4 = 24; 68 -> ... 28
        assert model(x).shape[-2:] == tuple({65: 24, 68: 28}[s] for s in shape)
    else:
        with pytest.raises(ValueError, match="66 px"):
            model(x)
