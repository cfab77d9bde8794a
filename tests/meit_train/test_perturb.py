"""The robustness protocol: Gaussian noise with σ ~ U(0, 0.1) on one random segment, all leads."""

from __future__ import annotations

import numpy as np
import torch

from meit_train.perturb import perturb_segment


def changed(clean: torch.Tensor, noisy: torch.Tensor) -> torch.Tensor:
    """(B, 12, T) boolean: where the noisy signal differs."""
    return noisy != clean


def test_noise_covers_exactly_the_declared_segment_on_every_lead():
    clean = torch.randn(64, 12, 1000, generator=torch.Generator().manual_seed(0))
    before = clean.clone()
    noisy = perturb_segment(clean, 0.15, np.random.default_rng(0))
    diff = changed(clean, noisy)
    starts = set()
    for i in range(len(clean)):
        cols = diff[i].any(dim=0).nonzero().flatten()
        assert len(cols) == 150  # round(0.15 x 1000), one contiguous run
        assert int(cols[-1] - cols[0]) == 149
        assert diff[i][:, cols].all()  # every lead over the whole segment
        starts.add(int(cols[0]))
    assert len(starts) > 32  # the segment start is drawn per sample
    assert torch.equal(clean, before)  # the input is untouched (a copy is returned)


def test_sigma_is_drawn_from_zero_to_max_per_sample_and_seeded():
    clean = torch.zeros(200, 12, 5000)
    noisy = perturb_segment(clean, 0.2, np.random.default_rng(3))
    seg = noisy.abs().sum(dim=1) > 0  # (B, T)
    sigmas = np.array([float(noisy[i][:, seg[i]].std()) for i in range(len(noisy))])
    assert sigmas.max() < 0.1 * 1.03  # 12,000 noise samples each: σ estimated to about 1 %
    assert sigmas.min() < 0.01 and sigmas.max() > 0.09
    assert abs(sigmas.mean() - 0.05) < 0.01  # uniform on (0, 0.1)
    again = perturb_segment(clean, 0.2, np.random.default_rng(3))
    other = perturb_segment(clean, 0.2, np.random.default_rng(4))
    assert torch.equal(noisy, again)
    assert not torch.equal(noisy, other)
