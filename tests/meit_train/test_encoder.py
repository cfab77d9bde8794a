"""The 1-D ResNet encoder: MEIT's ResNet-50 (bottleneck, 2048-d) and the basic-block default."""

from __future__ import annotations

import torch

from meit_train.encoder import EncoderConfig, ResNet1d

MEIT_RESNET50 = EncoderConfig(
    block="bottleneck", layers=[3, 4, 6, 3], kernel_size=3, stem_kernel=7, stem_pool=False
)


def bottleneck_resnet_params(layers: list[int], width: int, k: int, stem_k: int) -> int:
    """Parameter count of a 1-D bottleneck ResNet, counted block by block: convolutions without
    bias, two parameters per batch-norm channel, a projected shortcut where the shape changes."""
    total = 12 * width * stem_k + 2 * width
    c_in = width
    for i, n in enumerate(layers):
        mid = width * 2**i
        for j in range(n):
            stride = 2 if (j == 0 and i > 0) else 1
            total += c_in * mid + 2 * mid  # 1x1 reduce
            total += mid * mid * k + 2 * mid  # k, strided
            total += mid * 4 * mid + 2 * 4 * mid  # 1x1 expand
            if stride != 1 or c_in != 4 * mid:
                total += c_in * 4 * mid + 2 * 4 * mid
            c_in = 4 * mid
    return total


def test_meit_resnet50_is_a_2048_d_bottleneck_resnet():
    enc = ResNet1d(MEIT_RESNET50)
    assert enc.out_dim == 2048
    n = sum(p.numel() for p in enc.parameters())
    assert n == bottleneck_resnet_params([3, 4, 6, 3], 64, 3, 7)
    assert len(enc.stem) == 3  # conv, batch norm, ReLU: no max pooling, as the authors
    enc.eval()
    with torch.no_grad():
        assert enc(torch.randn(2, 12, 5000)).shape == (2, 2048)


def test_basic_block_default_is_unchanged():
    enc = ResNet1d(EncoderConfig())
    assert enc.out_dim == 512
    assert type(enc.stages[0]).__name__ == "BasicBlock1d"
    assert isinstance(enc.stem[-1], torch.nn.MaxPool1d)
    for layers in ([1], [1, 1]):
        small = ResNet1d(EncoderConfig(layers=layers, width=8, block="bottleneck"))
        assert small(torch.randn(2, 12, 500)).shape == (2, small.out_dim)
        assert small.out_dim == 8 * 2 ** (len(layers) - 1) * 4
