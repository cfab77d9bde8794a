"""Training configuration: the shipped presets, their merging with a config file."""

from __future__ import annotations

import pytest

from meit_train.config import TrainConfig, load_config, preset_names
from meit_train.encoder import ResNet1d


def test_meit_preset_is_the_papers_setup():
    cfg = load_config(None, preset="meit")
    assert (cfg.lr, cfg.warmup_ratio, cfg.epochs, cfg.batch_size) == (2e-5, 0.03, 5, 64)
    assert cfg.clip_norm is None and cfg.data.max_length == 128
    lora = cfg.model.lora
    assert (lora.r, lora.alpha, lora.dropout) == (64, 128, 0.1)
    assert set(lora.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj"} | {
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    assert cfg.data.prompt_format == "meit" and cfg.data.normalise == "meit"
    assert cfg.data.template_ids == ["report.meit_ptbxl", "report.meit_mimic"]
    enc = cfg.model.encoder
    assert (enc.block, enc.layers) == ("bottleneck", [3, 4, 6, 3])
    assert ResNet1d(enc).out_dim == 2048  # ResNet-50
    assert cfg.model.projector == "mlp" and cfg.model.normalise_slot


def test_preset_template_ids_exist_in_the_catalog():
    from pipeline.prompts import load_catalog

    ids = {t.id for t in load_catalog().templates}
    assert set(load_config(None, preset="meit").data.template_ids) <= ids


def test_config_file_is_merged_over_the_preset_key_by_key(tmp_path):
    path = tmp_path / "over.yaml"
    path.write_text("lr: 1.0e-4\ndata:\n  num_workers: 0\nmodel:\n  lora:\n    r: 8\n")
    cfg = load_config(path, preset="meit")
    assert cfg.lr == 1e-4 and cfg.data.num_workers == 0 and cfg.model.lora.r == 8
    assert cfg.data.template_ids and cfg.model.lora.alpha == 128  # kept from the preset


def test_presets_are_listed_and_unknown_ones_refused():
    assert {"meit", "tiny-cpu"} <= set(preset_names())
    with pytest.raises(ValueError, match="unknown preset 'x'; choose from meit"):
        load_config(None, preset="x")


@pytest.mark.parametrize("value,clip", [(None, None), (0, None), (0.0, None), (1.0, 1.0)])
def test_null_or_zero_max_grad_norm_disables_clipping(value, clip):
    assert TrainConfig(max_grad_norm=value).clip_norm == clip


def test_prompt_format_is_meit_by_default_and_checked():
    assert TrainConfig().data.prompt_format == "meit"
    with pytest.raises(ValueError):
        TrainConfig.model_validate({"data": {"prompt_format": "alpaca"}})
