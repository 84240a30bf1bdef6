"""Training losses (benchmark/training/losses.py) against float64 re-computations and hand-computed values."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from benchmark.training.discriminators import DISCRIMINATORS
from benchmark.training.losses import (LOSSES, Adversarial, Perceptual, Texture, TextureGram, build_loss,
                                      imagenet_vgg19, matconvnet_vgg19, start_step)
from models.weights import MissingWeights

pytestmark = pytest.mark.usefixtures("one_thread")

MEAN = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(1, 3, 1, 1)


def _images(seed: int, shape=(2, 3, 16, 16)):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g), torch.rand(shape, generator=g)


def test_registry_lists_every_recipe_loss():
    assert {"l1", "mse", "perceptual", "texture", "texture_gram", "adversarial"} <= set(LOSSES.list())
    assert {"ttsr", "c2_matching", "masa", "srntt"} <= set(DISCRIMINATORS.list())


@pytest.mark.parametrize("criterion", ["mse", "fro", "l1"])
def test_perceptual_matches_a_float64_recomputation(criterion):
    torch.manual_seed(0)
    vgg = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 5, 3, padding=1),
                        nn.ReLU())
    loss = Perceptual(criterion=criterion, vgg=vgg)
    sr, hr = _images(1)
    sr.requires_grad_(True)
    got = loss(sr, hr)
    ref = copy.deepcopy(vgg).double()
    diff = ref((sr.detach().double() - MEAN) / STD) - ref((hr.double() - MEAN) / STD)
    want = {"mse": diff.pow(2).mean(), "fro": diff.pow(2).sum().sqrt(), "l1": diff.abs().mean()}[criterion]
    assert float(got.detach()) == pytest.approx(float(want), rel=1e-5)
    got.backward()  # the gradient reaches the output, never the VGG
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())


def test_imagenet_vgg19_reads_torchvision_keys_and_never_downloads(tmp_path, monkeypatch):
    monkeypatch.setenv("REFSR_WEIGHTS", str(tmp_path))
    with pytest.raises(MissingWeights, match="vgg19-dcbb9e9d.pth"):
        imagenet_vgg19("relu1_1")
    w, b = torch.randn(64, 3, 3, 3), torch.randn(64)
    (tmp_path / "c2_matching").mkdir()
    torch.save({"features.0.weight": w, "features.0.bias": b, "classifier.0.bias": torch.zeros(2)},
               tmp_path / "c2_matching" / "vgg19-dcbb9e9d.pth")  # where C2-Matching's vgg19 role keeps it
    net = imagenet_vgg19("relu1_1")
    assert len(net) == 2 and torch.equal(net[0].weight, w) and not net[0].weight.requires_grad
    x = torch.rand(1, 3, 8, 8)
    assert torch.allclose(net(x), torch.relu(nn.functional.conv2d(x, w, b, padding=1)))


def test_texture_loss_is_the_mean_of_the_levels_mses():
    g = torch.Generator().manual_seed(2)
    pairs = [(torch.randn(2, c, s, s, generator=g), torch.randn(2, c, s, s, generator=g))
             for c, s in ((16, 4), (8, 8), (4, 16))]
    want = sum(float(((a.double() - b.double()) ** 2).mean()) for a, b in pairs) / 3
    assert float(Texture()(None, None, {"texture": pairs})) == pytest.approx(want, rel=1e-6)
    with pytest.raises(ValueError, match="texture features"):
        Texture()(None, None, {})


def test_texture_gram_loss_matches_a_float64_recomputation_of_the_official_formula():
    """SRNTT: mean over levels of mean_{b,i,j} (Gr(M) - Gr(phi(SR)))^2 / (4 (input_size^2 N_l)^2), N = 256, 512,
    1024 for relu3_1, relu2_1, relu1_1 (the official constants, written out here with input_size = 4)."""
    import numpy as np

    g = torch.Generator().manual_seed(7)
    n = 4  # input_size: relu3_1 is n x n with 256 channels, relu2_1 2n x 2n x 128, relu1_1 4n x 4n x 64
    pairs = [(torch.rand(2, c, s, s, generator=g, requires_grad=True), torch.rand(2, c, s, s, generator=g))
             for c, s in ((256, n), (128, 2 * n), (64, 4 * n))]
    want = 0.0
    for (feat, target), big_n in zip(pairs, (256, 512, 1024)):
        a = feat.detach().double().numpy().transpose(0, 2, 3, 1).reshape(2, -1, feat.shape[1])  # NHWC -> (B, HW, C)
        b = target.double().numpy().transpose(0, 2, 3, 1).reshape(2, -1, feat.shape[1])
        gram_a = np.einsum("bki,bkj->bij", a, a)
        gram_b = np.einsum("bki,bkj->bij", b, b)
        want += float(np.mean((gram_b - gram_a) ** 2)) / 4.0 / (n * n * big_n) ** 2
    want /= 3
    loss = TextureGram()(None, None, {"texture": pairs})
    assert float(loss.detach()) == pytest.approx(want, rel=1e-5) and want > 0
    loss.backward()  # the gradient reaches the output's features, not the targets
    assert pairs[0][0].grad is not None and pairs[0][1].grad is None
    same = TextureGram()(None, None, {"texture": [(b, b) for _, b in pairs]})
    assert float(same) == 0.0
    with pytest.raises(ValueError, match="texture features"):
        TextureGram()(None, None, {})


def test_matconvnet_perceptual_vgg_reads_srntt_file_and_feeds_0_255_minus_the_mean(tmp_path, monkeypatch):
    """weights: matconvnet = VGG19's layers with the .mat's kernels, input 255 x - mean pixel (up to relu2_1 here)."""
    from models.srntt import MATCONVNET_VGG19, write_matconvnet_vgg19

    monkeypatch.setenv("REFSR_WEIGHTS", str(tmp_path))
    with pytest.raises(MissingWeights, match="nothing is downloaded"):
        matconvnet_vgg19("relu2_1")
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Conv2d(64, 128, 3, padding=1), nn.ReLU())
    (tmp_path / "srntt").mkdir()
    with open(tmp_path / "srntt" / MATCONVNET_VGG19, "wb") as f:
        write_matconvnet_vgg19(f, {f"{n}.{leaf}": getattr(ref[i], leaf) for n, i in
                                   (("conv1_1", 0), ("conv1_2", 2), ("conv2_1", 5)) for leaf in ("weight", "bias")})
    loss = Perceptual(layer="relu2_1", criterion="mse", weights="matconvnet")
    sr, hr = _images(8, (1, 3, 16, 16))
    mean = torch.tensor([123.68, 116.779, 103.939], dtype=torch.float64).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = ref.double()
        want = float(((ref(sr.double() * 255 - mean) - ref(hr.double() * 255 - mean)) ** 2).mean())
    assert float(loss(sr, hr)) == pytest.approx(want, rel=1e-4)
    with pytest.raises(ValueError, match="torchvision or matconvnet"):
        Perceptual(vgg=nn.Identity(), weights="caffe")


class LinearCritic(nn.Module):
    """D(x) = <w, x> + b: its input gradient is w for every sample, so the penalty is hand-computable."""

    def __init__(self, shape):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.w = nn.Parameter(torch.randn(shape, generator=g) * 0.05)
        self.b = nn.Parameter(torch.tensor(0.3))

    def forward(self, x):
        return (x * self.w).flatten(1).sum(1, keepdim=True) + self.b


@pytest.mark.parametrize("input_range", [(0, 1), (-1, 1)])
def test_wgan_gp_losses_equal_hand_computed_values(input_range):
    adv = Adversarial({"type": "ttsr"}, crop_size=32, gan="wgan", gp_weight=10.0, input_range=input_range)
    adv.net_d = LinearCritic((3, 8, 8))
    fake, real = _images(4, (3, 3, 8, 8))
    lo, hi = input_range
    f, r = fake.double() * (hi - lo) + lo, real.double() * (hi - lo) + lo
    w = adv.net_d.w.detach().double()
    d = lambda x: (x * w).flatten(1).sum(1) + 0.3  # noqa: E731
    norm = float(w.pow(2).sum().sqrt())
    want_d = float(d(f).mean() - d(r).mean()) + 10 * (norm - 1) ** 2
    assert float(adv.discriminator_loss(fake, real).detach()) == pytest.approx(want_d, rel=1e-5)
    assert float(adv(fake, real).detach()) == pytest.approx(-float(d(f).mean()), rel=1e-5)


def test_wgan_gp_channel_norm_is_srntt_per_pixel_penalty():
    """SRNTT reduces the squared input gradient over the channel axis only: for a linear critic the slope
    at pixel (y, x) is |w[:, y, x]|, the penalty the mean over pixels of (slope - 1)^2."""
    adv = Adversarial({"type": "srntt"}, crop_size=32, gan="wgan", gp_weight=10.0, input_range=(-1, 1),
                      gp_norm="channel")
    adv.net_d = LinearCritic((3, 8, 8))
    fake, real = _images(9, (3, 3, 8, 8))
    f, r = fake.double() * 2 - 1, real.double() * 2 - 1
    w = adv.net_d.w.detach().double()
    d = lambda x: (x * w).flatten(1).sum(1) + 0.3  # noqa: E731
    slopes = w.pow(2).sum(0).sqrt()  # (8, 8)
    want = float(d(f).mean() - d(r).mean()) + 10 * float(((slopes - 1) ** 2).mean())
    assert float(adv.discriminator_loss(fake, real).detach()) == pytest.approx(want, rel=1e-5)
    per_sample = float(d(f).mean() - d(r).mean()) + 10 * (float(w.pow(2).sum().sqrt()) - 1) ** 2
    assert want != pytest.approx(per_sample, rel=1e-3)  # the two norms differ: the check can fail
    with pytest.raises(ValueError, match="gp_norm"):
        Adversarial({"type": "srntt"}, crop_size=32, gp_norm="pixel")


def test_vanilla_gan_losses_equal_hand_computed_values():
    adv = Adversarial({"type": "ttsr"}, crop_size=32, gan="vanilla")
    adv.net_d = LinearCritic((3, 8, 8))
    fake, real = _images(5, (3, 3, 8, 8))
    w = adv.net_d.w.detach().double()
    d = lambda x: (x.double() * w).flatten(1).sum(1) + 0.3  # noqa: E731
    softplus = lambda z: torch.log1p(torch.exp(z))  # noqa: E731  BCE(sigmoid(z), 1) = softplus(-z)
    want_d = float((softplus(-d(real)).mean() + softplus(d(fake)).mean()) / 2)
    assert float(adv.discriminator_loss(fake, real).detach()) == pytest.approx(want_d, rel=1e-5)
    assert float(adv(fake, real).detach()) == pytest.approx(float(softplus(-d(fake)).mean()), rel=1e-5)


def test_relativistic_gan_losses_equal_hand_computed_values_and_official_gradients():
    """MASA-SR's relativistic average GAN; the D loss's gradient flows through each term's own predictions."""
    adv = Adversarial({"type": "masa"}, crop_size=32, gan="relativistic", bgr=True)
    adv.net_d = LinearCritic((3, 8, 8))
    fake, real = _images(6, (3, 3, 8, 8))
    w = adv.net_d.w.detach().double()
    d = lambda x: (x.double().flip(1) * w).flatten(1).sum(1) + 0.3  # noqa: E731  D sees BGR
    softplus = lambda z: torch.log1p(torch.exp(z))  # noqa: E731
    df, dr = d(fake), d(real)
    want_d = float((softplus(-(dr - df.mean())).mean() + softplus(df - dr.mean()).mean()) / 2)
    want_g = float((softplus(dr - df.mean()).mean() + softplus(-(df - dr.mean())).mean()) / 2)
    loss = adv.discriminator_loss(fake, real)
    assert float(loss.detach()) == pytest.approx(want_d, rel=1e-5)
    assert float(adv(fake, real).detach()) == pytest.approx(want_g, rel=1e-5)
    loss.backward()  # official: real term backward with mean D(fake) detached, then fake term with D(real) detached
    wv = w.clone().requires_grad_(True)
    f2, r2 = fake.double().flip(1), real.double().flip(1)
    dfv, drv = (f2 * wv).flatten(1).sum(1) + 0.3, (r2 * wv).flatten(1).sum(1) + 0.3
    ((softplus(-(drv - dfv.detach().mean())).mean() + softplus(dfv - drv.detach().mean()).mean()) / 2).backward()
    assert torch.allclose(adv.net_d.w.grad.double(), wv.grad, rtol=1e-4, atol=1e-7)
    wa = w.clone().requires_grad_(True)  # without the detaches the gradient differs: the check can fail
    dfa, dra = (f2 * wa).flatten(1).sum(1) + 0.3, (r2 * wa).flatten(1).sum(1) + 0.3
    ((softplus(-(dra - dfa.mean())).mean() + softplus(dfa - dra.mean()).mean()) / 2).backward()
    assert float((adv.net_d.w.grad.double() - wa.grad).abs().max()) > 1e-3



def test_relativistic_step_with_masa_discriminator_equals_the_official_procedure():
    """MASA-SR's AdversarialLoss.forward with its batch-norm D, restated step by step: D(fake) detached, the
    real term backward, D(fake.detach()) and the fake term backward (each term halved), Adam step; then the
    generator's two halves with D(real) detached, scored by the updated D. Every D forward in train mode
    (batch statistics of that batch), as officially. Our one-pass D loss must give the same D gradients,
    and the generator term the same value and gradient to the output."""
    torch.manual_seed(0)
    adv = build_loss({"type": "adversarial", "gan": "relativistic", "bgr": True, "d_steps": 1,
                      "discriminator": {"type": "masa", "num_feat": 8},
                      "d_optimizer": {"lr": 1e-4, "betas": [0.0, 0.9], "eps": 1e-8}}, crop_size=32)
    adv.net_d.double().train()
    adv.optimizer = torch.optim.Adam(adv.net_d.parameters(), lr=1e-4, betas=(0.0, 0.9), eps=1e-8)
    official = copy.deepcopy(adv.net_d)
    fake, real = (x.double() for x in _images(7, (3, 3, 32, 32)))
    bce = nn.BCEWithLogitsLoss()
    bgr = lambda x: x.flip(1)  # noqa: E731  the official images are BGR

    adv.discriminator_step(fake, real)
    ours = [p.grad.clone() for p in adv.net_d.parameters()]
    official.zero_grad()
    p_fake = official(bgr(fake)).detach()
    p_real = official(bgr(real))
    (bce(p_real - p_fake.mean(), torch.ones_like(p_real)) * 0.5).backward()
    p_fake = official(bgr(fake).detach())
    (bce(p_fake - p_real.detach().mean(), torch.zeros_like(p_fake)) * 0.5).backward()
    for a, (name, p) in zip(ours, official.named_parameters()):
        assert torch.allclose(a, p.grad, rtol=1e-8, atol=1e-12), name

    official.load_state_dict(adv.net_d.state_dict())  # the generator is scored by the updated D
    official.requires_grad_(False)
    f1, f2 = fake.clone().requires_grad_(True), fake.clone().requires_grad_(True)
    g_ours = adv(f1, real)
    g_ours.backward()
    p_real = official(bgr(real)).detach()
    p_fake = official(bgr(f2))
    g_off = (bce(p_real - p_fake.mean(), torch.zeros_like(p_real)) * 0.5
             + bce(p_fake - p_real.mean(), torch.ones_like(p_fake)) * 0.5)
    g_off.backward()
    assert float(g_ours.detach()) == pytest.approx(float(g_off.detach()), rel=1e-10)
    assert torch.allclose(f1.grad, f2.grad, rtol=1e-8, atol=1e-14)
    assert f1.grad.abs().sum() > 0

def test_discriminator_step_trains_only_the_discriminator_and_leaves_it_frozen_for_the_generator():
    torch.manual_seed(0)
    adv = build_loss({"type": "adversarial", "weight": 1e-3, "discriminator": {"type": "ttsr"}, "d_steps": 2,
                      "d_optimizer": {"lr": 1e-3, "betas": [0.0, 0.9]}, "input_range": [-1, 1]}, crop_size=32)
    assert adv.optimizer.defaults["betas"] == (0.0, 0.9)
    before = {k: v.clone() for k, v in adv.net_d.state_dict().items()}
    fake = torch.rand(2, 3, 32, 32, requires_grad=True)
    adv.discriminator_step(fake, torch.rand(2, 3, 32, 32))
    assert fake.grad is None  # the D step sees a detached output
    assert any(not torch.equal(before[k], v) for k, v in adv.net_d.state_dict().items())
    assert int(adv.optimizer.state_dict()["state"][0]["step"]) == 2  # d_steps updates
    d_grads = [p.grad.clone() for p in adv.net_d.parameters()]
    assert not any(p.requires_grad for p in adv.net_d.parameters())
    adv(fake, None).backward()  # the generator's loss: gradient to the output, none to D
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert all(torch.equal(g, p.grad) for g, p in zip(d_grads, adv.net_d.parameters()))


def test_discriminators_have_the_official_structure():
    ttsr = DISCRIMINATORS.create("ttsr", in_size=160)
    widths = (3, 32, 32, 64, 64, 128, 128, 256, 256, 512, 512)
    convs = sum(9 * a * b + b for a, b in zip(widths, widths[1:]))
    assert sum(p.numel() for p in ttsr.parameters()) == convs + (5 * 5 * 512 * 1024 + 1024) + 1025
    assert ttsr(torch.rand(2, 3, 160, 160)).shape == (2, 1)
    c2 = DISCRIMINATORS.create("c2_matching", in_nc=3, ndf=32)
    chans = (3, 32, 64, 128, 256, 512)
    blocks = sum(9 * a * b + b + 2 * b + 9 * b * b + b + 2 * b for a, b in zip(chans, chans[1:]))
    assert sum(p.numel() for p in c2.parameters()) == blocks + (512 * 1024 + 1024) + 1025
    out = c2(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 1, 1, 1) and bool(((out > 0) & (out < 1)).all())
    with pytest.raises(ValueError, match="divisible by 32"):
        DISCRIMINATORS.create("ttsr", in_size=50)
    masa = DISCRIMINATORS.create("masa", in_size=160, num_feat=64)
    nf = 64
    convs = (3 * 9 * nf + nf) + 16 * nf * nf + sum(9 * a * b + 16 * b * b for a, b in
                                                   ((nf, 2 * nf), (2 * nf, 4 * nf), (4 * nf, 8 * nf), (8 * nf, 8 * nf)))
    bns = 2 * (nf + 2 * (2 * nf + 4 * nf + 8 * nf + 8 * nf))
    assert sum(p.numel() for p in masa.parameters()) == convs + bns + (8 * nf * 25 * 100 + 100) + 101
    assert masa(torch.rand(2, 3, 160, 160)).shape == (2, 1)
    srntt = DISCRIMINATORS.create("srntt", in_size=160)  # SRNTT/model.py discriminator, df_dim 32
    chans = (3, 32, 64, 128, 256, 512)
    convs = sum(9 * a * b + 9 * b * b for a, b in zip(chans, chans[1:]))  # no biases (b_init None)
    bns = sum(2 * 2 * b for b in chans[1:])  # gamma and beta of two BN layers per stage
    assert sum(p.numel() for p in srntt.parameters()) == convs + bns + (5 * 5 * 512 * 1024 + 1024) + 1025
    assert srntt(torch.rand(2, 3, 160, 160)).shape == (2, 1)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in srntt.modules()) == 10


def test_start_step_of_late_losses():
    assert start_step({"type": "texture", "after": {"epochs": 2}}, 1319) == 2638
    assert start_step({"type": "adversarial", "after": {"iterations": 10000}}, 7) == 10000
    assert start_step({"type": "l1"}, 7) == 0
    with pytest.raises(ValueError, match="epochs or iterations"):
        start_step({"type": "l1", "after": {"steps": 3}}, 7)


# ------------------------------------------------------------------ C2-Matching's contrastive stages
def _naive_matches(flow, h, w, stride=4, border=10.0):
    """Loop re-computation of the official ``warp``: (flat index in image 1, (y1, x1), (y2, x2)) per match."""
    out = []
    for i in range(h):
        for j in range(w):
            x, y = (float(v) for v in flow[stride * i, stride * j])
            if border < x < stride * w - border and border < y < stride * h - border:
                out.append((i * w + j, (i, j), (int(round(y / stride)), int(round(x / stride)))))
    return out


def _unit(v):
    return v / v.norm()


def _naive_contrastive(f1, f2, flow, margin=1.0, radius=4.0, min_matches=1):
    """Float64 loops: per match, hardest negatives outside the safe radius on both sides."""
    per_pair = []
    for b in range(f1.shape[0]):
        c, h, w = f1[b].shape
        m = _naive_matches(flow[b], h, w)
        if len(m) < min_matches:
            continue
        a = [_unit(f1[b, :, y, x]) for _, (y, x), _ in m]
        bb = [_unit(f2[b, :, y, x]) for _, _, (y, x) in m]
        every1 = [((i, j), _unit(f1[b, :, i, j])) for i in range(h) for j in range(w)]
        terms = []
        for k, (_, p1, p2) in enumerate(m):
            pos = 2 - 2 * float(a[k] @ bb[k])
            # inside the safe radius a candidate is pushed 10 away (the official masking), not dropped
            neg2 = min(2 - 2 * float(a[k] @ bb[n]) + 10.0 * (max(abs(p2[0] - q2[0]), abs(p2[1] - q2[1])) <= radius)
                       for n, (_, _, q2) in enumerate(m))
            neg1 = min(2 - 2 * float(bb[k] @ d) + 10.0 * (max(abs(p1[0] - q1[0]), abs(p1[1] - q1[1])) <= radius)
                       for q1, d in every1)
            terms.append(max(0.0, margin + pos - min(neg1, neg2)))
        per_pair.append(sum(terms) / len(terms))
    return sum(per_pair) / len(per_pair)


def _naive_distillation(s1, s2, t1, t2, flow, temperature):
    import math
    per_pair = []
    for b in range(s1.shape[0]):
        c, h, w = s1[b].shape
        m = _naive_matches(flow[b], h, w)
        sa = [_unit(s1[b, :, y, x]) for _, (y, x), _ in m]
        sb = [_unit(s2[b, :, y, x]) for _, _, (y, x) in m]
        ta = [_unit(t1[b, :, y, x]) for _, (y, x), _ in m]
        tb = [_unit(t2[b, :, y, x]) for _, _, (y, x) in m]
        kl = 0.0
        for i in range(len(m)):
            s_row = [float(sa[i] @ sb[j]) / temperature for j in range(len(m))]
            t_row = [float(ta[i] @ tb[j]) / temperature for j in range(len(m))]
            s_log = [v - math.log(sum(math.exp(u) for u in s_row)) for v in s_row]
            t_z = sum(math.exp(u) for u in t_row)
            kl += sum(math.exp(u) / t_z * (u - math.log(t_z) - sv) for u, sv in zip(t_row, s_log))
        per_pair.append(kl / len(m))
    return sum(per_pair) / len(per_pair)


def _pair_batch(seed=0, b=2, c=6, h=16, w=16):
    """Features on an h x w grid of images 4h x 4w, and flows of small homographies (some points leave)."""
    g = torch.Generator().manual_seed(seed)
    f1 = torch.randn(b, c, h, w, generator=g, dtype=torch.float64)
    f2 = torch.randn(b, c, h, w, generator=g, dtype=torch.float64)
    ys, xs = torch.meshgrid(torch.arange(4 * h, dtype=torch.float64), torch.arange(4 * w, dtype=torch.float64),
                            indexing="ij")
    flows = []
    for k in range(b):
        a = 0.05 * (k + 1)
        x2 = (1 + a) * xs + 0.1 * ys - 3.3 * k
        y2 = -0.07 * xs + (1 - a) * ys + 2.6
        flows.append(torch.stack([x2, y2], -1))
    return f1, f2, torch.stack(flows)


def test_contrastive_matches_a_float64_loop_recomputation():
    from benchmark.training.losses import Contrastive

    f1, f2, flow = _pair_batch()
    f1.requires_grad_(True)
    loss = Contrastive(margin=1.0, safe_radius=4, min_matches=1)
    got = loss({"dense_features1": f1, "dense_features2": f2}, None, {"flow": flow})
    want = _naive_contrastive(f1.detach(), f2, flow)
    assert got.dtype == torch.float64 and float(got.detach()) == pytest.approx(want, rel=1e-12)
    got.backward()
    assert f1.grad.abs().sum() > 0
    assert 0 < float(got.detach()) < 1.0 + 4.0  # relu(margin + positive - negative), distances in [0, 4]


def test_contrastive_gradient_reaches_both_branches_and_matches_finite_differences():
    """The gradient path (normalisation, hardest negatives both ways, nothing detached): autograd w.r.t. both
    feature maps agrees with central differences, so a training step moves each branch as the loss says."""
    from benchmark.training.losses import Contrastive

    f1, f2, flow = _pair_batch(seed=3, b=1, c=3, h=12, w=12)
    f1.requires_grad_(True)
    f2.requires_grad_(True)
    loss = Contrastive(margin=1.0, safe_radius=4, min_matches=1)
    assert torch.autograd.gradcheck(lambda a, b: loss({"dense_features1": a, "dense_features2": b}, None,
                                                      {"flow": flow}), (f1, f2), eps=1e-7, atol=1e-6)
    loss({"dense_features1": f1, "dense_features2": f2}, None, {"flow": flow}).backward()
    assert f1.grad.abs().sum() > 0 and f2.grad.abs().sum() > 0


def test_contrastive_is_zero_for_perfect_one_hot_descriptors():
    """Every match its own orthogonal descriptor in both images: positive 0, negatives 2 -> relu(1 - 2) = 0."""
    from benchmark.training.losses import Contrastive

    h = w = 16
    f1 = torch.eye(h * w, dtype=torch.float64).reshape(1, h * w, h, w)
    ys, xs = torch.meshgrid(torch.arange(4 * h, dtype=torch.float64), torch.arange(4 * w, dtype=torch.float64),
                            indexing="ij")
    flow = torch.stack([xs, ys], -1)[None]  # identity warp
    loss = Contrastive(min_matches=1)
    assert float(loss({"dense_features1": f1, "dense_features2": f1.clone()}, None, {"flow": flow})) == 0.0
    f2 = torch.roll(f1, 1, dims=3)  # every descriptor one cell off: positive 2, negative 2 -> margin 1
    assert float(loss({"dense_features1": f1, "dense_features2": f2}, None, {"flow": flow})) == pytest.approx(1.0)


def test_contrastive_skips_pairs_with_too_few_matches():
    from benchmark.training.losses import Contrastive

    f1, f2, flow = _pair_batch(b=2)
    n = [len(_naive_matches(flow[b], 16, 16)) for b in range(2)]
    assert n[0] != n[1]
    loss = Contrastive(min_matches=max(n))  # only the pair with more matches counts
    got = loss({"dense_features1": f1, "dense_features2": f2}, None, {"flow": flow})
    want = _naive_contrastive(f1, f2, flow, min_matches=max(n))
    assert float(got) == pytest.approx(want, rel=1e-12)
    with pytest.raises(ValueError, match="enough ground-truth matches"):
        Contrastive(min_matches=max(n) + 1)({"dense_features1": f1, "dense_features2": f2}, None, {"flow": flow})
    with pytest.raises(ValueError, match="pairs"):
        Contrastive()(torch.zeros(1, 3, 8, 8), None, {})


def test_distillation_matches_a_float64_loop_recomputation():
    from benchmark.training.losses import Distillation

    f1, f2, flow = _pair_batch(seed=3)
    t1, t2, _ = _pair_batch(seed=4)

    class Teacher(nn.Module):  # stands for the frozen stage-1 extractor: features of (HR, Ref)
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones((), dtype=torch.float64))

        def forward(self, hr, ref):
            assert hr is HR and ref is REF
            return {"dense_features1": t1 * self.w, "dense_features2": t2 * self.w}

    HR, REF = torch.zeros(2, 3, 48, 48), torch.zeros(2, 3, 48, 48)
    loss = Distillation(Teacher(), temperature=0.15, min_matches=1)
    f1.requires_grad_(True)
    got = loss({"dense_features1": f1, "dense_features2": f2}, HR, {"flow": flow, "ref": REF})
    want = _naive_distillation(f1.detach(), f2, t1, t2, flow, 0.15)
    assert float(got.detach()) == pytest.approx(want, rel=1e-10)
    got.backward()
    assert f1.grad.abs().sum() > 0 and loss.teacher.w.grad is None  # the teacher is frozen
    same = loss({"dense_features1": t1, "dense_features2": t2}, HR, {"flow": flow, "ref": REF})
    assert abs(float(same)) < 1e-12  # a student equal to its teacher: KL 0
