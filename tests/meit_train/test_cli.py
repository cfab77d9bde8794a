"""meit-train / meit-eval manners: every input mistake is one line and exit 2, found before any
weights are loaded; a finished run is not silently retrained."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from meit_train import evaluate as evaluate_mod
from meit_train import train as train_mod
from meit_train.cli import eval_main, train_main
from tests.meit_train.conftest import read_losses


@pytest.fixture
def no_weights(monkeypatch):
    """Loading a model is an error: a check that passes would be caught loading weights."""

    def refuse(*_a, **_k):
        raise AssertionError("weights were loaded before the inputs were checked")

    monkeypatch.setattr(train_mod, "build_model", refuse)
    monkeypatch.setattr(evaluate_mod, "build_model", refuse)


def one_line(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def train_args(corpus, model, out, *extra) -> list[str]:
    return ["--corpus", str(corpus), "--model", str(model), "--out", str(out), *extra]


def test_missing_train_extra_names_the_pip_command(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    assert train_main(train_args(tmp_path, tmp_path, tmp_path / "r")) == 2
    one_line(capsys, "torch", 'pip install "meit-corpus[train]"')
    assert eval_main(["--corpus", str(tmp_path), "--run", str(tmp_path)]) == 2
    one_line(capsys, 'pip install "meit-corpus[train]"')


@pytest.mark.usefixtures("no_weights")
def test_train_input_mistakes_are_one_line(tiny_corpus, tiny_gpt2, tmp_path, capsys):
    out = tmp_path / "run"
    cases = [
        (train_args(tmp_path / "nope", tiny_gpt2, out), "does not exist"),
        (train_args(tmp_path, tiny_gpt2, out), "no manifest.json"),
        (train_args(tiny_corpus, tmp_path / "no-model", out), "neither a local folder"),
        (train_args(tiny_corpus, "someone/not-cached-model", out), "Hugging Face cache"),
        (train_args(tiny_corpus, tiny_gpt2, out, "--preset", "nope"), "unknown preset"),
        (train_args(tiny_corpus, tiny_gpt2, out, "--preset", "meit"), "normalise: meit"),
    ]
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: 1.0e-4\nlearning_rate_typo: 3\n")
    cases.append(
        (train_args(tiny_corpus, tiny_gpt2, out, "--config", str(bad)), "learning_rate_typo")
    )
    src = tmp_path / "src.yaml"
    src.write_text("data:\n  sources: [mimic]\n  split: validation\n")
    cases.append((train_args(tiny_corpus, tiny_gpt2, out, "--config", str(src)), "source mimic"))
    for argv, needle in cases:
        assert train_main(argv) == 2, argv
        one_line(capsys, needle)
    assert not out.exists()


@pytest.mark.usefixtures("no_weights")
def test_eval_input_mistakes_are_one_line(demo_corpus, demo_run, tmp_path, capsys):
    def args(corpus=demo_corpus, run=demo_run, *extra):
        return ["--corpus", str(corpus), "--run", str(run), *extra]

    broken = tmp_path / "broken-run"
    shutil.copytree(demo_run, broken)
    info = json.loads((broken / "run.json").read_text())
    (broken / "run.json").write_text(json.dumps(info | {"model": str(tmp_path / "gone")}))
    cases = [
        (args(tmp_path / "nope"), "does not exist"),
        (args(demo_corpus, tmp_path / "nope"), "does not exist"),
        (args(demo_corpus, tmp_path), "no run.json"),
        (args(demo_corpus, demo_run, "--source", "mimic"), "no rows"),  # demo: no MIMIC test rows
        (args(demo_corpus, broken), "neither a local folder"),
        (args(demo_corpus, demo_run, "--perturb", "0.1,x"), "--perturb"),
    ]
    for argv, needle in cases:
        assert eval_main(argv) == 2, argv
        one_line(capsys, needle)
    shutil.rmtree(broken / "best")
    assert eval_main(args(demo_corpus, broken, "--weights", "best")) == 2
    one_line(capsys, "no best/")


def test_finished_run_is_refused_unless_overwrite(
    tiny_corpus, tiny_gpt2, train_config, tmp_path, capsys
):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        json.dumps(train_config(max_steps=2, checkpoint_every=1).model_dump(mode="json"))
    )
    out = tmp_path / "run"
    argv = train_args(tiny_corpus, tiny_gpt2, out, "--config", str(cfg))
    assert train_main(argv) == 0
    first = read_losses(out)
    capsys.readouterr()
    assert train_main(argv) == 2
    one_line(capsys, "finished run", "--overwrite")
    assert read_losses(out) == first  # nothing appended
    (out / "eval-test.json").write_text("{}")
    assert train_main([*argv, "--overwrite"]) == 0
    assert read_losses(out) == first and not (out / "eval-test.json").exists()


def test_corpus_normalisation_must_match_the_run(tmp_path):
    """A corpus written with MEIT's min-max normalisation (each record in [0, 1]) satisfies
    ``data.normalise: meit`` and nothing else."""
    import numpy as np

    from meit_train.checks import InputError, check_corpus
    from meit_train.corpus import Selection, selected_units
    from meit_train.data import read_unit
    from tests.meit_train.corpora import write_synthetic_corpus

    corpus = write_synthetic_corpus(
        tmp_path / "c", {("mimic", "train"): 4}, n_samples=200, normalise="meit"
    )
    assert check_corpus(corpus, Selection("train"), "meit") == 4
    assert check_corpus(corpus, Selection("train"), None) == 4
    with pytest.raises(
        InputError, match="built with normalise: meit, this run needs normalise: none"
    ):
        check_corpus(corpus, Selection("train"), "none")
    for row in read_unit(selected_units(corpus, Selection("train"))[0], ["ecg"]):
        assert np.isclose(row["ecg"].min(), 0) and np.isclose(row["ecg"].max(), 1, atol=1e-3)
