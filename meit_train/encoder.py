"""The ECG encoder: a 1-D ResNet trained from scratch (configurable depth and width)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn


class EncoderConfig(BaseModel):
    """Shape of the 1-D ResNet: blocks per stage (``[2, 2, 2, 2]`` = ResNet-18), first stage width."""

    model_config = ConfigDict(extra="forbid")

    layers: list[int] = [2, 2, 2, 2]
    width: int = 64
    kernel_size: int = 7
    stem_kernel: int = 15
    in_channels: int = 12


class BasicBlock1d(nn.Module):
    """Two convolutions with batch norm and a (projected) residual connection."""

    def __init__(self, c_in: int, c_out: int, stride: int, k: int):
        super().__init__()
        self.conv1 = nn.Conv1d(c_in, c_out, k, stride, k // 2, bias=False)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, k, 1, k // 2, bias=False)
        self.bn2 = nn.BatchNorm1d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.down = None
        if stride != 1 or c_in != c_out:
            self.down = nn.Sequential(
                nn.Conv1d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm1d(c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        skip = x if self.down is None else self.down(x)
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + skip)


class ResNet1d(nn.Module):
    """(B, 12, T) signal → (B, ``out_dim``) by stem, residual stages and global average pooling."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        w = cfg.width
        self.stem = nn.Sequential(
            nn.Conv1d(cfg.in_channels, w, cfg.stem_kernel, 2, cfg.stem_kernel // 2, bias=False),
            nn.BatchNorm1d(w),
            nn.ReLU(inplace=True),
            nn.MaxPool1d(3, 2, 1),
        )
        stages, c_in = [], w
        for i, n in enumerate(cfg.layers):
            c_out = w * 2**i
            for j in range(n):
                stages.append(
                    BasicBlock1d(c_in, c_out, 2 if (j == 0 and i > 0) else 1, cfg.kernel_size)
                )
                c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.out_dim = c_in

    def forward(self, x: Tensor) -> Tensor:
        return self.stages(self.stem(x)).mean(dim=-1)
