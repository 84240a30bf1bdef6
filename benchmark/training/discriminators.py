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
