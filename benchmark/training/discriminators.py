"""The authors' discriminators, rebuilt from the layer structure of their official code.

A GAN recipe names one (``losses: [{type: adversarial, discriminator: {type: ttsr, ...}}]``); it
lives only in the training checkpoint (the harness scores generators).
"""
from __future__ import annotations

import torch
from torch import nn

from core.registry import Registry

DISCRIMINATORS = Registry("discriminator")


@DISCRIMINATORS.register("ttsr", source="researchmm/TTSR @550e4c9 loss/discriminator.py")
class TTSRDiscriminator(nn.Module):
    """TTSR: ten 3x3 convs (32-32-64-64-128-128-256-256-512-512, stride 2 on every second),
    LeakyReLU 0.2, then FC 1024 and FC 1 on the flattened (in_size/32)^2 x 512 map; PyTorch's
    default initialisation. ``in_size`` is the HR crop side (official: 4 x train_crop_size 40)."""

    def __init__(self, in_size: int = 160):
        super().__init__()
        if in_size % 32:
            raise ValueError(f"TTSR's discriminator needs an input side divisible by 32, got {in_size}")
        widths = (32, 32, 64, 64, 128, 128, 256, 256, 512, 512)
        layers, cin = [], 3
        for i, cout in enumerate(widths):
            layers += [nn.Conv2d(cin, cout, 3, 2 if i % 2 else 1, 1), nn.LeakyReLU(0.2)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear((in_size // 32) ** 2 * 512, 1024), nn.LeakyReLU(0.2), nn.Linear(1024, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


@DISCRIMINATORS.register("c2_matching", source="yumingj/C2-Matching @6d60149 mmsr/models/archs/discriminator_arch.py")
class ImageDiscriminator(nn.Module):
    """C2-Matching (also DATSR): five blocks of [3x3 conv, BN, LReLU 0.2, 3x3 conv stride 2, BN,
    LReLU] with ndf x (1, 2, 4, 8, 16) channels, global average pool, 1x1 conv to 1024, LReLU,
    1x1 conv to 1, sigmoid. Init: conv weights N(0, 0.02), biases 0, BN weights N(1, 0.02)."""

    def __init__(self, in_nc: int = 3, ndf: int = 32):
        super().__init__()
        blocks, cin = [], in_nc
        for mult in (1, 2, 4, 8, 16):
            cout = ndf * mult
            blocks.append(nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, True),
                                        nn.Conv2d(cout, cout, 3, 2, 1), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, True)))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, 1024, 1), nn.LeakyReLU(0.2),
                                  nn.Conv2d(1024, 1, 1), nn.Sigmoid())
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x))


@DISCRIMINATORS.register("masa", source="dvlab-research/MASA-SR @80d1bd8 models/losses.py VGGStyleDiscriminator160")
class VGGStyleDiscriminator(nn.Module):
    """MASA-SR (ESRGAN's VGG-style D): conv3x3 + LReLU, then [conv4x4 s2, BN, LReLU] and five more stages of
    [conv3x3, BN, LReLU, conv4x4 s2, BN, LReLU] (widths nf x 1, 2, 4, 8, 8; convs after the first without
    bias), linear (in_size/32)^2 x 8nf -> 100, LReLU, linear -> 1; LReLU 0.2; default initialisation.
    ``in_size`` is the HR crop side (official: 160, asserted)."""

    def __init__(self, in_size: int = 160, num_in_ch: int = 3, num_feat: int = 64):
        super().__init__()
        if in_size % 32:
            raise ValueError(f"MASA's discriminator needs an input side divisible by 32, got {in_size}")

        def cbl(cin, cout, k, s):
            return [nn.Conv2d(cin, cout, k, s, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, True)]

        nf = num_feat
        layers = [nn.Conv2d(num_in_ch, nf, 3, 1, 1), nn.LeakyReLU(0.2, True), *cbl(nf, nf, 4, 2)]
        for cin, cout in ((nf, 2 * nf), (2 * nf, 4 * nf), (4 * nf, 8 * nf), (8 * nf, 8 * nf)):
            layers += cbl(cin, cout, 3, 1) + cbl(cout, cout, 4, 2)
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(8 * nf * (in_size // 32) ** 2, 100), nn.LeakyReLU(0.2, True),
                                  nn.Linear(100, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


@DISCRIMINATORS.register("srntt", source="ZZUTK/SRNTT @93b9b34 SRNTT/model.py SRNTT.discriminator")
class SRNTTDiscriminator(nn.Module):
    """SRNTT: five stages of [3x3 conv, BN, LReLU 0.2, 3x3 conv stride 2, BN, LReLU] with 32 x (1, 2, 4, 8, 16)
    channels (convs without bias), flatten, dense 1024 + LReLU, dense 1 (the logit WGAN-GP uses). Init as the
    official TensorLayer layers: conv weights N(0, 0.02), BN gamma N(1, 0.02), beta 0 (eps 1e-5, decay 0.9),
    dense weights truncated N(0, 0.1), biases 0. ``in_size`` is the HR crop side (official: 4 x input_size 40)."""

    def __init__(self, in_size: int = 160, ndf: int = 32):
        super().__init__()
        if in_size % 32:
            raise ValueError(f"SRNTT's discriminator needs an input side divisible by 32, got {in_size}")

        def cbl(cin, cout, stride):
            return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1),
                    nn.LeakyReLU(0.2)]

        layers, cin = [], 3
        for i in range(5):
            cout = ndf * 2 ** i
            layers += cbl(cin, cout, 1) + cbl(cout, cout, 2)
            cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear((in_size // 32) ** 2 * cin, 1024), nn.LeakyReLU(0.2), nn.Linear(1024, 1))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, 0.0, 0.1, -0.2, 0.2)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))
