"""The shipped digits teacher and classifier: used by the first run without training, checked on load, made again by one command.

What the shipped files record (seed, steps, hashes, quality, size) is checked in nbs/12_digits.ipynb."""
import json, os, shutil
from pathlib import Path
import pytest
import torch

import directcms.support.digits as digits; import directcms.support.digits_metrics as digits_metrics; import directcms.presets.digits as presets
from directcms.support.config import TrainConfig
from directcms.support.digits import ASSETS_COMMAND, SHIPPED_DIR, WEIGHTS_NAME, file_sha256, shipped_teacher_dir, teacher_info
from directcms.support.digits_metrics import make_digits_assets, shipped_classifier, teacher_quality
from directcms.run.training import run

TINY = dict(max_steps=2, batch_size=8, num_intervals=10, num_eval=32, eval_every=0, checkpoint_every=2)

def test_first_run_trains_nothing(tmp_path, monkeypatch):
    def no(*a, **k): raise AssertionError("the first run must not train a teacher or a classifier")
    monkeypatch.setattr(presets, "train_digits_teacher", no)
    monkeypatch.setattr(presets, "train_digit_classifier", no)
    assets = tmp_path / "digits"
    m = run(TrainConfig(loss="cm", assets_dir=str(assets), output_dir=str(tmp_path / "run"), **TINY), progress=False)
    assert m["train"]["steps"] == 2
    names = sorted(p.name for p in assets.iterdir())          # what a run computes: the fixed noise, the references
    assert len(names) == 2 and names[0] == "init_noise.pt" and names[1].startswith("teacher-"), names

def _copy_shipped(tmp_path, monkeypatch):
    d = tmp_path / "assets"
    shutil.copytree(SHIPPED_DIR, d)
    monkeypatch.setattr(digits, "SHIPPED_DIR", d)
    monkeypatch.setattr(digits_metrics, "SHIPPED_CLASSIFIER", d / "classifier.safetensors")
    return d

@pytest.mark.parametrize("damage", ["truncate", "delete", "info"])
def test_damaged_teacher_names_the_file_and_the_command(damage, tmp_path, monkeypatch):
    d = _copy_shipped(tmp_path, monkeypatch)
    w = d / "teacher" / WEIGHTS_NAME
    if damage == "truncate": w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    elif damage == "delete": w.unlink()
    else: (d / "teacher" / "teacher_info.json").write_text("{not json")
    with pytest.raises((RuntimeError, FileNotFoundError)) as e:
        presets.DigitsPreset(TrainConfig(assets_dir=str(tmp_path / "digits"), **TINY).validate())
    named = d / "teacher" / ("teacher_info.json" if damage == "info" else WEIGHTS_NAME)
    assert str(named) in str(e.value) and ASSETS_COMMAND in str(e.value)

@pytest.mark.parametrize("damage", ["flip", "delete"])
def test_damaged_classifier_names_the_file_and_the_command(damage, tmp_path, monkeypatch):
    d = _copy_shipped(tmp_path, monkeypatch)
    w = d / "classifier.safetensors"
    if damage == "flip": b = bytearray(w.read_bytes()); b[-1] ^= 1; w.write_bytes(bytes(b))
    else: w.unlink()
    with pytest.raises((RuntimeError, FileNotFoundError)) as e:
        shipped_classifier()
    assert str(w) in str(e.value) and ASSETS_COMMAND in str(e.value)

def test_user_teacher_folder_and_other_teacher_steps(tmp_path):
    "A teacher folder of the user's is used as given; other teacher_steps train one into assets_dir, once."
    assets = tmp_path / "digits"
    cfg = TrainConfig(loss="direct", assets_dir=str(assets), output_dir=str(tmp_path / "a"), teacher_steps=5, **TINY)
    run(cfg, progress=False)
    trained = assets / "teacher"
    assert teacher_info(trained)["steps"] == 5
    with pytest.raises(ValueError, match="trained 5 steps"):                  # a different request is not served by it
        presets.DigitsPreset(TrainConfig(assets_dir=str(assets), teacher_steps=6, **TINY).validate())
    m = run(TrainConfig(loss="direct", assets_dir=str(tmp_path / "other"), output_dir=str(tmp_path / "b"),
                        teacher=str(trained), **TINY), progress=False)
    assert not (tmp_path / "other" / "teacher").exists()
    with pytest.raises(FileNotFoundError, match="no teacher at"):
        presets.DigitsPreset(TrainConfig(teacher=str(tmp_path / "missing"), assets_dir=str(assets), **TINY).validate())

def test_retrain_command_reduced_steps(tmp_path):
    "The regeneration command end to end with few steps: files, record and hashes (the full one is the slow test)."
    info = make_digits_assets(tmp_path, teacher_steps=10, classifier_steps=10, num_eval=32, progress=False)
    assert info["steps"] == 10 and info["weights_sha256"] == file_sha256(tmp_path / "teacher" / WEIGHTS_NAME)
    assert "teacher_steps=10" in info["command"] and set(info["quality"]) >= {"fd_real", "class_accuracy"}
    m = run(TrainConfig(loss="cm", teacher=str(tmp_path / "teacher"), assets_dir=str(tmp_path / "digits"),
                        output_dir=str(tmp_path / "run"), **TINY), progress=False)
    assert m["train"]["steps"] == 2

@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("DIRECTCMS_SLOW_TESTS"), reason="about 3 minutes on 2 cores: set DIRECTCMS_SLOW_TESTS=1")
def test_retrained_teacher_has_the_recorded_quality(tmp_path):
    """The documented command at full length: a teacher within the recorded quality range.

    Opt-in (DIRECTCMS_SLOW_TESTS=1 python -m pytest tests/test_digits_assets.py -m slow) so that the default suite
    stays within its time budget; the default suite runs the same command with reduced steps instead."""
    info = make_digits_assets(tmp_path, progress=False)
    shipped = teacher_info(shipped_teacher_dir())
    q = teacher_quality(tmp_path / "teacher")                   # measured with the shipped classifier, like the record
    lo, hi = shipped["quality_range"]["fd_real"]
    assert lo <= q["fd_real"] <= hi, (q, shipped["quality_range"])
    assert q["class_accuracy"] >= shipped["quality_range"]["class_accuracy"][0]
    clf = json.loads((tmp_path / "classifier.json").read_text())
    assert clf["test_accuracy"] >= json.loads((SHIPPED_DIR / "classifier.json").read_text())["test_accuracy"] - 0.03
