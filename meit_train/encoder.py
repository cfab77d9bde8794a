"""The ECG encoder: a 1-D ResNet trained from scratch (configurable depth, width and block).

``block: basic`` stacks two-convolution blocks (``layers: [2, 2, 2, 2]`` = ResNet-18, 512-d output);
``block: bottleneck`` stacks 1×1 → k → 1×1 blocks with a 4× wider output (``layers: [3, 4, 6, 3]``
= ResNet-50, 2048-d output, the MEIT authors' encoder). The MEIT authors' stem is one stride-2
convolution of kernel 7 without max pooling and their block kernel is 3
(``kernel_size: 3, stem_kernel: 7, stem_pool: false``); the defaults here keep the wider kernels
and the max-pooled stem of this trainer's first version.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn


class EncoderConfig(BaseModel):
    """Shape of the 1-D ResNet: block type, blocks per stage, first stage width, kernels."""

    model_config = ConfigDict(extra="forbid")

    block: Literal["basic", "bottleneck"] = "basic"
    layers: list[int] = [2, 2, 2, 2]
    width: int = 64
    kernel_size: int = 7
    stem_kernel: int = 15
    stem_pool: bool = True
    in_channels: int = 12


def _shortcut(c_in: int, c_out: int, stride: int) -> nn.Module | None:
    """A projected (1×1 convolution + batch norm) shortcut when the shape changes, else None."""
    if stride == 1 and c_in == c_out:
        return None
    return nn.Sequential(nn.Conv1d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm1d(c_out))


class BasicBlock1d(nn.Module):
    """Two convolutions with batch norm and a (projected) residual connection."""

    expansion = 1

    def __init__(self, c_in: int, c_mid: int, stride: int, k: int):
        super().__init__()
        self.conv1 = nn.Conv1d(c_in, c_mid, k, stride, k // 2, bias=False)
        self.bn1 = nn.BatchNorm1d(c_mid)
        self.conv2 = nn.Conv1d(c_mid, c_mid, k, 1, k // 2, bias=False)
        self.bn2 = nn.BatchNorm1d(c_mid)
        self.relu = nn.ReLU(inplace=True)
        self.down = _shortcut(c_in, c_mid, stride)

    def forward(self, x: Tensor) -> Tensor:
        skip = x if self.down is None else self.down(x)
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + skip)


class Bottleneck1d(nn.Module):
    """1×1 reduce → k (strided) → 1×1 expand (×4), batch norm after each, (projected) residual."""

    expansion = 4

    def __init__(self, c_in: int, c_mid: int, stride: int, k: int):
        super().__init__()
        c_out = c_mid * self.expansion
        self.conv1 = nn.Conv1d(c_in, c_mid, 1, bias=False)
        self.bn1 = nn.BatchNorm1d(c_mid)
        self.conv2 = nn.Conv1d(c_mid, c_mid, k, stride, k // 2, bias=False)
        self.bn2 = nn.BatchNorm1d(c_mid)
        self.conv3 = nn.Conv1d(c_mid, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm1d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.down = _shortcut(c_in, c_out, stride)

    def forward(self, x: Tensor) -> Tensor:
        skip = x if self.down is None else self.down(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        return self.relu(self.bn3(self.conv3(y)) + skip)


BLOCKS: dict[str, type[nn.Module]] = {"basic": BasicBlock1d, "bottleneck": Bottleneck1d}


class ResNet1d(nn.Module):
    """(B, 12, T) signal → (B, ``out_dim``) by stem, residual stages and global average pooling."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        w, block = cfg.width, BLOCKS[cfg.block]
        stem: list[nn.Module] = [
            nn.Conv1d(cfg.in_channels, w, cfg.stem_kernel, 2, cfg.stem_kernel // 2, bias=False),
            nn.BatchNorm1d(w),
            nn.ReLU(inplace=True),
        ]
        if cfg.stem_pool:
            stem.append(nn.MaxPool1d(3, 2, 1))
        self.stem = nn.Sequential(*stem)
        stages, c_in = [], w
        for i, n in enumerate(cfg.layers):
            c_mid = w * 2**i
            for j in range(n):
                stride = 2 if (j == 0 and i > 0) else 1
                stages.append(block(c_in, c_mid, stride, cfg.kernel_size))
                c_in = c_mid * block.expansion
        self.stages = nn.Sequential(*stages)
        self.out_dim = c_in

    def forward(self, x: Tensor) -> Tensor:
        return self.stages(self.stem(x)).mean(dim=-1)
