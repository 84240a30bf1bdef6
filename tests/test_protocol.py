"""Protocol presets: published figures, independent re-implementation, hashing, YAML, sizing policies."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from benchmark.protocol import ProtocolError, list_protocols, load_protocol
from core.resize import imresize, pil_bicubic

#: Pinned so that any change to a preset is deliberate: results carry these hashes.
PRESET_HASHES = {
    "basicsr": "e723183dbe7cfb76110c3042e337e7041a53c349e861149324552bfbcc9c8c71",
    "dataset-lr": "ac3e0381350fb469d38ffc67097ec7169d11d0e2e6021c9870ca65647a290899",
    "datsr": "e2fd3f515183e9e9afb65bfd67a48c987532de74cf99b009ef56e84861e59344",
    "masa": "6d85a607b4d14405c9f2c8022a03d933773bd6fca46fe1d3c7a4c26e8e74091b",  # group-vertical since MASA's five-reference test
    "refsr-standard": "1845af88c40a097aaf3ec38c0d04c3a62a07911e954e7dd38630797236320889",
    "ssmtf": "2e99d4748d339764809a18f03a15a254322f34d2e47204f7fa237d28f47423ac",
    "ttsr": "5d6b8a39ffdbc4080b8286cccf199bece35cc81adf08dcf90eb0859b1524c90c",
}


def _image(h=50, w=61, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.random((h, w, 3)) * 255, (2, 2, 0))
    return np.clip(smooth + rng.normal(0, 10, smooth.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name,figures", [("Set5", (28.42, 0.8104)), ("Set14", (26.00, 0.7027))])
def test_bicubic_x4_reproduces_published_figures_under_basicsr(shared_data, name, figures):
    """Done-when of issue 4: the SISR literature's Bicubic row (MATLAB imresize down and up)."""
    p = load_protocol("basicsr")
    folder = shared_data / "sr_benchmarks" / name
    rows = []
    for path in sorted(folder.glob("*.png")):
        hr_eval, lr = p.make_pair(np.asarray(Image.open(path).convert("RGB")), 4)
        sr = imresize(lr, 4) / 255.0
        rows.append(p.score(p.quantise(sr), hr_eval, metrics=["psnr_y", "ssim_y"], device="cpu", scale=4))
    assert len(rows) == {"Set5": 5, "Set14": 14}[name]
    psnr_y, ssim_y = np.mean([r["psnr_y"] for r in rows]), np.mean([r["ssim_y"] for r in rows])
    print(f"{name} bicubic x4 (basicsr): {psnr_y:.3f} dB / {ssim_y:.4f}")
    assert abs(psnr_y - figures[0]) <= 0.10 and abs(ssim_y - figures[1]) <= 0.003


def independent_refsr_standard(sr: np.ndarray, hr: np.ndarray, scale: int) -> tuple[float, float]:
    """The refsr-standard formulas written out in numpy/scipy float64: clamp, x255, round; MATLAB Y;
    border crop = scale; PSNR; SSIM over valid 11x11 Gaussian windows."""
    sr = np.round(np.clip(sr.astype(np.float64), 0, 1) * 255)
    hr = hr.astype(np.float64)

    def luma(x):
        return 16 + (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]) / 255

    a, b = luma(sr)[scale:-scale, scale:-scale], luma(hr)[scale:-scale, scale:-scale]
    psnr = 10 * np.log10(255 ** 2 / np.mean((a - b) ** 2))
    g = ndimage.gaussian_filter1d  # sigma 1.5, truncated at radius 5 = 11 taps, valid part only

    def filt(x):
        return g(g(x, 1.5, axis=0, truncate=5 / 1.5, mode="constant"), 1.5, axis=1, truncate=5 / 1.5,
                 mode="constant")[5:-5, 5:-5]

    mu_a, mu_b = filt(a), filt(b)
    var_a, var_b, cov = filt(a * a) - mu_a ** 2, filt(b * b) - mu_b ** 2, filt(a * b) - mu_a * mu_b
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))).mean()
    return float(psnr), float(ssim)


def test_refsr_standard_matches_independent_float64_implementation():
    p = load_protocol("refsr-standard")
    hr_eval, lr = p.make_pair(_image(70, 83), 4)
    rng = np.random.default_rng(5)
    up = np.asarray(Image.fromarray(lr).resize((hr_eval.shape[1], hr_eval.shape[0]), Image.BICUBIC))
    sr = up.astype(np.float32) / 255 + rng.normal(0, 0.03, up.shape).astype(np.float32)  # exceeds [0, 1]
    for sr_in in (sr, torch.from_numpy(sr)):
        ours = p.score(p.quantise(sr_in), hr_eval, metrics=["psnr_y", "ssim_y"], device="cpu", scale=4)
        ref_psnr, ref_ssim = independent_refsr_standard(sr, hr_eval, 4)
        assert ours["psnr_y"] == pytest.approx(ref_psnr, abs=1e-6)
        assert ours["ssim_y"] == pytest.approx(ref_ssim, abs=1e-6)


def test_batch_scores_equal_single_scores():
    p = load_protocol("refsr-standard")
    hrs = [p.make_pair(_image(48, 48, seed), 4)[0] for seed in (1, 2)]
    srs = [np.clip(h / 255 + 0.02, 0, 1) for h in hrs]
    batch = p.score_batch(p.quantise(np.stack(srs)), np.stack(hrs), device="cpu")
    for i in range(2):
        single = p.score(p.quantise(srs[i]), hrs[i], device="cpu")
        for k, v in single.items():
            assert batch[k][i] == pytest.approx(v, abs=1e-12)


# ------------------------------------------------------------------ hashing and YAML
def test_preset_hashes_are_pinned_and_ignore_name_and_description():
    assert set(list_protocols()) == set(PRESET_HASHES)
    for name, digest in PRESET_HASHES.items():
        assert load_protocol(name).hash == digest, f"preset {name} changed: update results deliberately"
    p = load_protocol("refsr-standard")
    assert dataclasses.replace(p, name="mine", description="x").hash == p.hash
    assert load_protocol().name == "refsr-standard"


def test_yaml_round_trip(tmp_path):
    for name in list_protocols():
        p = load_protocol(name)
        path = tmp_path / f"{name}-copy.yaml"
        path.write_text(p.to_yaml())
        q = load_protocol(path)
        assert q == p and q.hash == p.hash and q.as_dict() == p.as_dict()


def test_user_protocol_from_a_base_with_changes(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nbase: refsr-standard\nscore:\n  border_crop: 0\n"
                    "  metric_options: {ssim_y: {window: 11, sigma: 2, k1: 0.01, k2: 0.03}}\n")
    p, base = load_protocol(path), load_protocol("refsr-standard")
    assert p.name == "mine" and p.border(4) == 0 and p.hr == base.hr and p.y == base.y
    assert p.score_policy.options_for("ssim_y")["sigma"] == 2.0 and p.hash != base.hash
    path.write_text(path.read_text().replace("sigma: 2,", "sigma: 2.0,"))
    assert load_protocol(path).hash == p.hash  # 2 and 2.0 are the same parameter
    other = dataclasses.replace(base, y=dataclasses.replace(base.y, offset=0.0))
    assert other.hash != base.hash


@pytest.mark.parametrize("text,message", [
    ("name: x\nbase: refsr-standard\nhr: {size: crop}\n", r"hr\.size: expected one of \['mod-crop', 'pad'\], got 'crop'"),
    ("name: x\nbase: refsr-standard\nhr: {sise: pad}\n", r"unknown key\(s\) hr\.sise"),
    ("name: x\nbase: refsr-standard\nscore: {border_crop: -1}\n", r"score\.border_crop: expected a non-negative"),
    ("name: x\nbase: refsr-standard\ny: {weights: [1, 2]}\n", r"y\.weights: expected three numbers"),
    ("name: x\nbase: refsr-standard\noutput: {clamp: 'yes'}\n", r"output\.clamp: expected true or false"),
    ("name: x\nbase: nope\n", r"base: 'nope' is not a preset"),
    ("name: x\nbase: refsr-standard\nscore: {metric_options: {ssim_y: {padding: same}}}\n",
     r"score\.metric_options\.ssim_y: unknown option\(s\) \['padding'\]"),
    ("name: x\nbase: refsr-standard\nscore: {metric_options: {fid: {}}}\n", r"unknown metric 'fid'"),
    ("name: x\nbase: refsr-standard\nhr: {size: pad, multiple: scale}\n", r"hr\.multiple: give a number"),
    ("name: x\nlr: {kernel: pil-bicubic}\n", r"missing section 'hr'"),
    ("name: x\nbase: refsr-standard\nlr: [pil]\n", r"lr: expected a mapping"),
    ("name: x\nbase: refsr-standard\ncolour: rgb\n", r"unknown key\(s\) colour"),
    ("- just\n- a list\n", r"a protocol is a mapping"),
    ("name: x\nhr: {size: pad\n", r"line \d+, column \d+.* not valid YAML"),
])
def test_bad_yaml_errors_name_the_file_and_field(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ProtocolError, match=message) as info:
        load_protocol(path)
    assert str(path) in str(info.value)


def test_unknown_protocol_name_lists_presets():
    with pytest.raises(ProtocolError, match="refsr-standard"):
        load_protocol("refsr-standrad")


# ------------------------------------------------------------------ sizing, LR, quantisation, references
def test_mod_crop_presets_make_lr_with_their_kernel():
    hr = _image(50, 61)
    he, lr = load_protocol("refsr-standard").make_pair(hr, 4)
    assert he.shape == (48, 60, 3) and np.array_equal(he, hr[:48, :60])
    assert np.array_equal(lr, pil_bicubic(hr[:48, :60], (12, 15)))
    he, lr = load_protocol("basicsr").make_pair(hr, 4)
    assert np.array_equal(lr, imresize(hr[:48, :60], 0.25))
    with pytest.raises(ValueError, match="uint8 \\(H, W, 3\\)"):
        load_protocol("basicsr").make_pair(hr.astype(np.float32), 4)


def test_masa_pads_around_the_centre_and_scores_the_original_region():
    p = load_protocol("masa")
    hr = _image(50, 61)
    he, lr = p.make_pair(hr, 4)
    assert np.array_equal(he, hr) and lr.shape == (16, 16, 3)  # 64x64 padded HR / 4
    padded = np.pad(hr, ((7, 7), (1, 2), (0, 0)), mode="edge")  # (64-50)//2 top, (64-61)//2 left
    assert np.array_equal(lr, pil_bicubic(padded, (16, 16)))
    perfect = p.quantise(padded / 255.0)  # an SR of the padded size that is exactly right
    assert np.isinf(p.score(perfect, he, metrics=["psnr_rgb"], device="cpu")["psnr_rgb"])
    shifted = p.quantise(np.roll(padded, 1, axis=1) / 255.0)
    assert np.isfinite(p.score(shifted, he, metrics=["psnr_rgb"], device="cpu")["psnr_rgb"])
    with pytest.raises(ValueError, match="does not match the HR"):
        p.score(perfect[:-1], he, device="cpu")


def test_padded_score_region_scores_the_padded_image(tmp_path):
    path = tmp_path / "masa-padded.yaml"
    path.write_text("name: masa-padded\nbase: masa\nhr: {score_region: padded}\n")
    p = load_protocol(path)
    he, lr = p.make_pair(_image(50, 61), 4)
    assert he.shape == (64, 64, 3) and lr.shape == (16, 16, 3) and p.hash != load_protocol("masa").hash


def test_quantise_clamps_and_rounds_per_preset():
    sr = np.array([[[-0.1, 0.5, 1.2]]])
    np.testing.assert_array_equal(load_protocol("refsr-standard").quantise(sr), [[[0.0, 128.0, 255.0]]])
    np.testing.assert_array_equal(load_protocol("ttsr").quantise(sr), [[[-26.0, 128.0, 306.0]]])
    t = load_protocol("refsr-standard").quantise(torch.tensor(sr, dtype=torch.float32))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float64


def test_border_crop_and_y_weights_differ_between_presets():
    std, ttsr = load_protocol("refsr-standard"), load_protocol("ttsr")
    hr = _image(40, 40)
    sr = hr.astype(np.float64)
    sr[:2] = 255 - sr[:2]  # wrong only inside the 4-pixel border
    assert np.isinf(std.score(sr, hr, metrics=["psnr_y"], device="cpu", scale=4)["psnr_y"])
    assert np.isfinite(ttsr.score(sr, hr, metrics=["psnr_y"], device="cpu", scale=4)["psnr_y"])
    rgb = torch.tensor([[[[255.0]], [[255.0]], [[255.0]]]])
    assert std.to_y(rgb).item() == pytest.approx(235.0)
    assert ttsr.to_y(rgb).item() == pytest.approx(16 + 219.859 * 255 / 256)


def test_reference_policies():
    ref = _image(101, 75)
    assert load_protocol("refsr-standard").prepare_ref(ref, 4).shape == (100, 72, 3)
    masa = load_protocol("masa")
    single = masa.prepare_ref(ref)
    assert single.shape == (112, 80, 3) and np.array_equal(single[:101, :75], ref)
    stacked = masa.prepare_ref([ref, _image(90, 120, 1)])
    assert stacked.shape == (1024, 512, 3)
    assert np.array_equal(stacked[205:306, 218:293], ref)  # centred on the first 512x512 canvas
    with pytest.raises(ValueError, match="exceed the 512x512"):
        masa.prepare_ref([_image(600, 20)])
    with pytest.raises(ValueError, match="takes one reference"):
        load_protocol("refsr-standard").prepare_ref([ref, ref])


def test_drift_protocols_that_score_alike_reuse_the_values(monkeypatch):
    """basicsr differs from refsr-standard only in its LR kernel, which re-scoring an output never
    uses: its drift rows reuse the suite protocol's values; the others are scored on their own."""
    from benchmark.evaluation import score_rows
    from benchmark.protocol import Protocol

    std, basicsr, ttsr, masa = (load_protocol(n) for n in ("refsr-standard", "basicsr", "ttsr", "masa"))
    assert std.scoring_key == basicsr.scoring_key and len({std.scoring_key, ttsr.scoring_key, masa.scoring_key}) == 3
    hr = _image(48, 64)
    sr = torch.from_numpy(_image(48, 64, seed=1)).permute(2, 0, 1)[None].float() / 255 * 1.02 - 0.01
    calls = []
    real = Protocol.score
    monkeypatch.setattr(Protocol, "score", lambda self, *a, **k: calls.append(self.name) or real(self, *a, **k))
    rows = score_rows(sr, hr, std, [basicsr, ttsr, masa], ["psnr_y", "ssim_y"],
                      {"psnr_y": (True, ""), "ssim_y": (True, "")}, "cpu", 4)
    assert calls == ["refsr-standard", "ttsr", "masa"]
    sr_img = sr[0].permute(1, 2, 0).numpy()
    for p in (basicsr, ttsr, masa):
        direct = real(p, p.quantise(sr_img), hr, metrics=["psnr_y", "ssim_y"], device="cpu", scale=4)
        got = {r["metric"]: r["value"] for r in rows if r["protocol"] == p.name}
        assert got == pytest.approx(direct, rel=0, abs=0), p.name
