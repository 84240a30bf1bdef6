"""LR kernels: PIL bicubic (default) and MATLAB-style imresize, on HR cropped to a multiple of the scale."""
import numpy as np
import pytest

from core.resize import imresize
from builders.degrade import make_lr
from core.resize import mod_crop


def test_lr_kernels():
    hr = mod_crop(np.random.default_rng(0).integers(0, 256, (42, 37, 3), dtype=np.uint8), 4)
    assert hr.shape == (40, 36, 3)
    pil, matlab = make_lr(hr, 4), make_lr(hr, 4, "matlab-bicubic")
    assert pil.shape == matlab.shape == (10, 9, 3) and np.array_equal(matlab, imresize(hr, scale=0.25))
    assert not np.array_equal(pil, matlab)
    with pytest.raises(ValueError):
        make_lr(hr[:39], 4)
