"""The robustness protocol: Gaussian noise with σ ~ U(0, 0.1) on one random segment, all leads."""

from __future__ import annotations

import numpy as np
import pytest
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


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_noise_is_the_seeded_draws_in_protocol_order(dtype):
    """Per sample: start ~ U{0..T-L}, then σ ~ U(0, max_sigma), then (12, L) float32 normal noise,
    cast to the signal's dtype and added to the signal (not replacing it). The same draws, made
    here, give the same output bit for bit."""
    g = torch.Generator().manual_seed(1)
    clean = torch.randn(3, 12, 50, dtype=torch.float64, generator=g).to(dtype)
    got = perturb_segment(clean, 0.1, np.random.default_rng(11), max_sigma=0.5)
    rng, want = np.random.default_rng(11), clean.clone()
    for i in range(3):
        start = int(rng.integers(0, 50 - 5 + 1))
        sigma = float(rng.uniform(0.0, 0.5))
        noise = rng.normal(0.0, sigma, (12, 5)).astype(np.float32)
        want[i, :, start : start + 5] += torch.from_numpy(noise).to(dtype)
    assert got.dtype == dtype
    assert torch.equal(got, want)


def test_segment_bounds_short_and_whole_signal():
    clean = torch.zeros(400, 12, 10)
    # 0.01 x 10 rounds to 0: still one sample is perturbed
    tiny = changed(clean, perturb_segment(clean, 0.01, np.random.default_rng(0)))
    assert (tiny.any(dim=1).sum(dim=1) == 1).all()
    # the segment may start at 0 and end at the last sample: every start 0..T-L is drawn
    nine = changed(clean, perturb_segment(clean, 0.9, np.random.default_rng(0))).any(dim=1)
    assert {int(row.nonzero()[0]) for row in nine} == {0, 1}
    whole = perturb_segment(clean, 1.0, np.random.default_rng(0))
    assert changed(clean, whole).all()
