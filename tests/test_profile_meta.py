"""FLOPs counted on the meta device (for sizes too large to run) equal a real forward's count."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from benchmark.profile import _register_formulas, count_flops, count_on_meta, count_params
from models import create_model, get_spec

pytestmark = pytest.mark.usefixtures("one_thread")


def test_cpu_attention_kernel_is_counted():
    """FlopCounterMode has no formula for the CPU attention kernel: two products, 2 FLOPs per MAC."""
    _register_formulas()
    q = torch.rand(3, 2, 64, 8)
    with FlopCounterMode(display=False) as c:
        F.scaled_dot_product_attention(q, q, q)
    assert c.get_total_flops() == 2 * 2 * (3 * 2 * 64 * 64 * 8)


@pytest.mark.parametrize("name", ["c2_matching", "datsr", "ttsr"])  # deform conv, attention, search
def test_meta_count_equals_real_forward(name):
    kwargs = get_spec(name).test_kwargs
    params, flops = count_on_meta(name, (8, 8), (32, 32), kwargs)
    torch.manual_seed(0)
    model = create_model(name, **kwargs).eval()
    assert params == count_params(model)[0]
    assert flops == count_flops(model, torch.rand(1, 3, 8, 8), torch.rand(1, 3, 32, 32)) > 0
