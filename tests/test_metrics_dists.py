"""DISTS equals the authors' own implementation (dists-pytorch, run here with the same VGG16)."""
import pytest
import torch

from benchmark.metrics import create_metric, metric_info


def test_dists_matches_the_official_code(monkeypatch):
    official = pytest.importorskip("DISTS_pytorch.DISTS_pt", reason="dists-pytorch not installed")
    import torchvision

    from models.pretrained import backbone_state_dict

    real_vgg16 = torchvision.models.vgg16

    def vgg16_with_our_weights(**_):  # the official code asks torchvision to download ImageNet weights
        net = real_vgg16(weights=None)
        net.features.load_state_dict(backbone_state_dict("vgg16"))
        return net

    monkeypatch.setattr(official.models, "vgg16", vgg16_with_our_weights)
    ref_net = official.DISTS().eval()
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 3, 64, 80, generator=g)
    sr = (hr + 0.1 * torch.randn(2, 3, 64, 80, generator=g)).clamp(0, 1)
    with torch.no_grad():
        want = ref_net(sr, hr, batch_average=False).reshape(-1).double()
    metric = create_metric("dists", device="cpu")
    got = metric((sr * 255), (hr * 255))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    assert not metric_info("dists").higher_is_better and metric_info("dists").needs_reference
    assert metric(hr * 255, hr * 255).abs().max() < 1e-5  # identical images: distance 0
