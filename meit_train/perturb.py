"""The paper's robustness protocol: Gaussian noise on one random segment, the same on all leads."""

from __future__ import annotations

import numpy as np
import torch

LEVELS = (0.05, 0.10, 0.15, 0.20)


def perturb_segment(
    ecg: torch.Tensor, fraction: float, rng: np.random.Generator, max_sigma: float = 0.1
) -> torch.Tensor:
    """Copy of (B, 12, T) ``ecg`` where, per sample, a random segment of ``fraction`` of T samples
    (same start on all leads) gets Gaussian noise with σ ~ U(0, ``max_sigma``)."""
    out = ecg.clone()
    b, leads, t = ecg.shape
    length = max(1, int(round(fraction * t)))
    for i in range(b):
        start = int(rng.integers(0, t - length + 1))
        sigma = float(rng.uniform(0.0, max_sigma))
        noise = rng.normal(0.0, sigma, (leads, length)).astype(np.float32)
        out[i, :, start : start + length] += torch.from_numpy(noise).to(out.dtype)
    return out
