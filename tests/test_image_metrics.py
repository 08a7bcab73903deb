"""directcms.support.image_metrics: the skip policy with the network switched off by monkeypatching (each metric whose weights
are unavailable gives exactly one MetricSkipped warning naming what to provide, NaN, and no compute), the real
offline probes and their timing, and the weight look-up of FID and pretrained_source against a mocked hub.

The metrics themselves on tiny random models (FD-DINOv2, CLIP score, aesthetic score, streaming sums, sharding, the
Frechet arithmetic, argument checks) run as the examples of nbs/15_image_metrics.ipynb. `tiny_clip_dir` stays here
for tests/test_sdxl_eval.py."""
import json, math, sys, time, types, warnings
from pathlib import Path

import pytest
import torch

import directcms.support.image_metrics as im
from directcms.support.image_metrics import (IMAGE_METRICS, MetricSkipped, MissingWeights, fid_inception, image_metrics,
                                     inception_weights, pretrained_source)

PROMPTS = ["a cat", "a dog", "red car", "blue sky", "hello", "zebra!"]


def tiny_clip_dir(d, seed=0):
    "A random 1-layer CLIP (projection 16, 32 px) saved with save_pretrained, with a processor from a 56-token vocab."
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer, CLIPImageProcessor, CLIPProcessor
    d = Path(d); d.mkdir(parents=True, exist_ok=True)
    letters = "abcdefghijklmnopqrstuvwxyz"
    toks = ["<|startoftext|>", "<|endoftext|>", *letters, *(c + "</w>" for c in letters), "!", "!</w>"]
    (d / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(toks)}))
    (d / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(d / "vocab.json"), str(d / "merges.txt"))
    proc = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                            crop_size={"height": 32, "width": 32}), tokenizer=tok)
    small = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    cfg = CLIPConfig(text_config=dict(vocab_size=len(toks), max_position_embeddings=32, bos_token_id=0, eos_token_id=1,
                                      pad_token_id=1, **small),
                     vision_config=dict(image_size=32, patch_size=8, **small), projection_dim=16)
    torch.manual_seed(seed)
    CLIPModel(cfg).save_pretrained(d); proc.save_pretrained(d)
    return d


def images(n, size=40, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def skipped(w):
    return [str(x.message) for x in w if issubclass(x.category, MetricSkipped)]


@pytest.mark.parametrize("metric,kw,needle", [
    ("fd_dinov2", dict(dinov2_model="no-such-org/no-such-dinov2"), "no-such-org/no-such-dinov2"),
    ("fd_dinov2", dict(dinov2_model="/nonexistent/dinov2"), "/nonexistent/dinov2"),
    ("clip_score", dict(clip_model="no-such-org/no-such-clip"), "no-such-org/no-such-clip"),
    ("clip_score", dict(clip_model="/nonexistent/clip"), "/nonexistent/clip"),
    ("aesthetic_score", dict(aesthetic_weights="/nonexistent/sac.pth"), "sac+logos+ava1-l14-linearMSE.pth"),
    ("aesthetic_score", dict(), "sac+logos+ava1-l14-linearMSE.pth"),
    ("fid", dict(inception_weights="/nonexistent/inception.pth"), "weights-inception-2015-12-05-6726825d.pth"),
])
def test_missing_weights_skipped_with_one_warning(metric, kw, needle, monkeypatch):
    monkeypatch.setattr(im, "_head_status", lambda url, timeout: None)   # as offline, even where the hub is reachable
    monkeypatch.setattr(im, "_frechet", lambda *a, **k: pytest.fail("computed a skipped metric"))
    t = time.time()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = image_metrics(images(4), images(4), PROMPTS[:4], metrics=(metric,), **kw)
    assert time.time() - t < 10
    msgs = skipped(w)
    assert len(msgs) == 1, msgs
    assert msgs[0].startswith(f"{metric} skipped:") and needle in msgs[0]
    assert list(r) == [metric] and math.isnan(r[metric])


def test_all_missing_real_offline_checks(monkeypatch, tmp_path):
    "No monkeypatching of the network: the offline hub ids fail fast, every metric is skipped before any compute."
    if (im._head_status(im.INCEPTION_URL, 5.0) or 999) < 400: pytest.skip("online: the Inception weights are downloadable")
    monkeypatch.setattr(im, "_frechet", lambda *a, **k: pytest.fail("computed a skipped metric"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))               # an empty torch hub cache
    t = time.time()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = image_metrics(images(4), images(4), PROMPTS[:4], dinov2_model="no-such-org/dinov2-none",
                          clip_model="no-such-org/clip-none", aesthetic_weights=tmp_path / "none.pth")
    assert time.time() - t < 20
    msgs = skipped(w)
    assert [m.split()[0] for m in msgs] == list(IMAGE_METRICS) and list(r) == list(IMAGE_METRICS)
    assert all(math.isnan(v) for v in r.values())
    assert "weights-inception-2015-12-05-6726825d.pth" in msgs[0] and "no-such-org/dinov2-none" in msgs[1]
    assert "no-such-org/clip-none" in msgs[2] and "sac+logos+ava1-l14-linearMSE.pth" in msgs[3]


def test_fid_inception_offline(monkeypatch, tmp_path):
    # without torch-fidelity (as here) or without its weights, fid_inception raises MissingWeights naming the file
    monkeypatch.setattr(im, "_head_status", lambda url, timeout: None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(MissingWeights, match="weights-inception-2015-12-05-6726825d.pth"):
        fid_inception(images(2), images(2))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = image_metrics(images(2), images(2), metrics=("fid",))
    assert math.isnan(r["fid"]) and len(skipped(w)) == 1
    # with torch-fidelity present, the weights are looked up in the torch hub cache before anything is built
    monkeypatch.setitem(sys.modules, "torch_fidelity", types.ModuleType("torch_fidelity"))
    cached = Path(torch.hub.get_dir()) / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    assert str(tmp_path) in str(cached)
    with pytest.raises(MissingWeights, match="unreachable"):
        inception_weights()
    with pytest.raises(MissingWeights, match="no Inception weights at"):
        inception_weights(tmp_path / "nope.pth")
    cached.parent.mkdir(parents=True); cached.write_bytes(b"x")
    assert inception_weights() == str(cached)
    monkeypatch.setattr(im, "_head_status", lambda url, timeout: 200)
    cached.unlink()
    assert inception_weights() is None                                   # downloadable now: torch-fidelity fetches it


def test_pretrained_source_hub(monkeypatch):
    "A hub id: unreachable, unknown, reachable, offline (the hub mocked; a local directory is in the notebook)."
    monkeypatch.setattr(im, "_head_status", lambda url, timeout: None)
    with pytest.raises(MissingWeights, match="cannot reach"):
        pretrained_source("no-such-org/none")
    monkeypatch.setattr(im, "_head_status", lambda url, timeout: 404)
    with pytest.raises(MissingWeights, match="HTTP 404"):
        pretrained_source("no-such-org/none")
    monkeypatch.setattr(im, "_head_status", lambda url, timeout: 200)
    assert pretrained_source("facebook/dinov2-base") == {}
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingWeights, match="HF_HUB_OFFLINE"):
        pretrained_source("facebook/dinov2-base")


def test_head_status_fails_fast_offline():
    "The real probe (no monkeypatch): offline it returns None quickly, it never retries for a minute."
    t = time.time()
    status = im._head_status("https://huggingface.co/no-such-org/none/resolve/main/config.json", 5.0)
    assert status is None or status >= 400
    assert time.time() - t < 12

