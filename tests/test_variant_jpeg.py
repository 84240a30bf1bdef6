"""``jpeg:Q`` references: the same bytes libjpeg gives, lower quality costs more, bad Q is refused."""
import io

import numpy as np
import pytest
from PIL import Image

from builders.variants import VariantInput, get_variant, variant_rng


def _psnr(a, b):
    return 10 * np.log10(255.0 ** 2 / np.mean((a.astype(np.float64) - b) ** 2))


def test_jpeg_reference_is_pillows_jpeg_and_degrades_with_quality():
    rng = np.random.default_rng(0)
    ref = np.repeat(np.repeat(rng.integers(0, 256, (16, 20, 3), dtype=np.uint8), 4, 0), 4, 1)
    inp = VariantInput("s", 1, hr=ref, ref=ref)
    out, rec = get_variant("jpeg:50").apply(inp, variant_rng(0, "s", "jpeg:50"))
    buf = io.BytesIO()
    Image.fromarray(ref).save(buf, format="JPEG", quality=50, subsampling=2)
    assert np.array_equal(out, np.asarray(Image.open(buf).convert("RGB"))) and rec["jpeg_bytes"] == buf.tell()
    worse, _ = get_variant("jpeg:5").apply(inp, variant_rng(0, "s", "jpeg:5"))
    assert _psnr(out, ref) > _psnr(worse, ref) + 3
    assert get_variant("jpeg").name == "jpeg:30"


@pytest.mark.parametrize("bad", ["0", "96", "high"])
def test_bad_quality_is_refused(bad):
    with pytest.raises(ValueError, match="jpeg"):
        get_variant(f"jpeg:{bad}")
