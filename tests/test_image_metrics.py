"""directcms.image_metrics offline: FID / FD-DINOv2 / CLIP score / aesthetic score on tiny random models built from
configs (no download), and the skip policy: each metric whose weights are unavailable gives exactly one
MetricSkipped warning naming what to provide, NaN, and no compute."""
import json, math, sys, time, types, warnings
from pathlib import Path

import pytest
import torch
from transformers import Dinov2Config

import directcms.image_metrics as im
from directcms.image_metrics import (IMAGE_METRICS, DINOV2_MODEL, AestheticPredictor, DinoV2Features, MetricSkipped,
                                     MissingWeights, StreamingImageMetrics, aesthetic_score, clip_image_embeddings,
                                     clip_score, clip_text_embeddings, fd_dinov2, fid_inception, frechet_from_sums,
                                     image_metrics, inception_weights, load_aesthetic_predictor, load_clip,
                                     load_image_metrics, pretrained_source)

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


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return tiny_clip_dir(tmp_path_factory.mktemp("clip") / "tiny-clip")


@pytest.fixture(scope="module")
def dino():
    torch.manual_seed(0)
    cfg = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32,
                       patch_size=8)
    return DinoV2Features(cfg, image_size=None)


@pytest.fixture(scope="module")
def aesthetic_file(tmp_path_factory):
    torch.manual_seed(1)
    p = tmp_path_factory.mktemp("aes") / "aesthetic.pth"
    torch.save(AestheticPredictor(16).state_dict(), p)
    return p


def images(n, size=40, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def skipped(w):
    return [str(x.message) for x in w if issubclass(x.category, MetricSkipped)]


# --- FD-DINOv2 ------------------------------------------------------------------------------------------------

def test_dinov2_features(dino):
    assert dino.num_features == 32 and dino.image_size == 32 and not dino.model.training
    f = dino(images(5))
    assert f.shape == (5, 32) and f.dtype == torch.float32 and torch.isfinite(f).all()
    assert dino(images(2, size=17)).shape == (2, 32)                      # any size is resized
    grey = images(3)[:, :1]
    assert torch.allclose(dino(grey), dino(grey.expand(-1, 3, -1, -1)))  # grey -> 3 channels
    # default 224 px resize, as FD-DINOv2 (Stein et al. 2023) uses; the tiny model interpolates its positions
    assert DinoV2Features(dino.model).image_size == 224


def test_fd_dinov2_self_zero_and_different_positive(dino):
    a, b = images(24, seed=1), images(24, seed=2)
    same = fd_dinov2(a, a, dino, batch_size=7)
    assert abs(same) < 1e-3
    shifted = fd_dinov2(a, b * 0.5 - 0.4, dino)
    assert shifted > 0.1
    assert fd_dinov2(a, b * 0.5 - 0.4, dino, batch_size=5) == pytest.approx(shifted, rel=1e-4)  # batching-invariant


# --- CLIP score -----------------------------------------------------------------------------------------------

def test_clip_score_tiny_local(clip_dir):
    x = images(6, size=48)
    s = clip_score(x, PROMPTS, clip_dir, batch_size=4)
    assert math.isfinite(s) and 0 < s <= 100                             # seeded: positive, not clipped to 0
    loaded = load_clip(clip_dir)
    assert clip_score(x, PROMPTS, loaded, batch_size=6) == pytest.approx(s, abs=1e-4)
    # the score is torchmetrics' max(100 * mean cos, 0) of the CLIP embeddings
    clip, proc = loaded
    e_i = clip_image_embeddings(x, clip, proc)
    tx = proc(text=PROMPTS, return_tensors="pt", padding=True)
    e_t = clip.get_text_features(tx["input_ids"], tx["attention_mask"])
    cos = torch.nn.functional.cosine_similarity(e_i, e_t, dim=-1)
    assert s == pytest.approx(max(100 * cos.mean().item(), 0.0), abs=1e-3)
    with pytest.raises(ValueError, match="prompts"):
        clip_score(x, PROMPTS[:3], loaded)


# --- aesthetic score ------------------------------------------------------------------------------------------

def test_aesthetic_predictor_layout_and_score(clip_dir, aesthetic_file):
    # the state-dict keys of christophschuhmann/improved-aesthetic-predictor's MLP
    keys = {k.rsplit(".", 1)[0] for k in AestheticPredictor().state_dict()}
    assert keys == {"layers.0", "layers.2", "layers.4", "layers.6", "layers.7"}
    assert AestheticPredictor().layers[0].in_features == 768
    pred = load_aesthetic_predictor(aesthetic_file)
    assert pred.input_size == 16 and not pred.training
    x = images(6, size=48)
    s = aesthetic_score(x, clip_dir, aesthetic_file, batch_size=4)
    assert math.isfinite(s)
    clip, proc = load_clip(clip_dir)
    emb = clip_image_embeddings(x, clip, proc)
    assert s == pytest.approx(pred(emb).mean().item(), abs=1e-5)
    assert torch.allclose(pred(emb), pred(3 * emb), atol=1e-5)           # embeddings are L2-normalised first
    torch.save({"state_dict": pred.state_dict()}, aesthetic_file.with_name("wrapped.pth"))
    assert load_aesthetic_predictor(aesthetic_file.with_name("wrapped.pth")).input_size == 16


def test_aesthetic_dimension_mismatch(clip_dir, tmp_path):
    torch.save(AestheticPredictor(768).state_dict(), tmp_path / "l14.pth")
    with pytest.raises(ValueError, match="ViT-L/14"):
        aesthetic_score(images(2), clip_dir, tmp_path / "l14.pth")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = image_metrics(images(2), images(2), metrics=("aesthetic_score",), clip_model=clip_dir,
                          aesthetic_weights=tmp_path / "l14.pth")
    assert math.isnan(r["aesthetic_score"]) and len(skipped(w)) == 1 and "ViT-L/14" in skipped(w)[0]


# --- streaming: running sums ---------------------------------------------------------------------------------

def test_streaming_equals_one_shot_and_shards_add_up(dino, clip_dir, aesthetic_file):
    assert DINOV2_MODEL == "facebook/dinov2-large"                         # ViT-L/14, dgm-eval's default
    M = ("fd_dinov2", "clip_score", "aesthetic_score")
    models = load_image_metrics(M, dinov2_model=dino.model,
                                dinov2_image_size=None, clip_model=clip_dir, aesthetic_weights=aesthetic_file)
    ref, x, prompts = images(10, seed=5), images(10, seed=6) * 0.5, PROMPTS + ["a", "b", "c", "d"]
    whole = StreamingImageMetrics(models, M).update(x, ref, prompts).compute()
    shards = [StreamingImageMetrics(models, M).update(x[i:j], ref[i:j], prompts[i:j]) for i, j in ((0, 3), (3, 10))]
    for k in shards[0].state: shards[0].state[k] += shards[1].state[k]    # what reduce does across processes
    assert shards[0].compute() == pytest.approx(whole, rel=1e-6, abs=1e-7)    # float32 batches: near-zero cosines differ in the last bits
    assert whole["fd_dinov2"] == pytest.approx(fd_dinov2(ref, x, dino), rel=1e-4)   # torchmetrics' Frechet distance
    clip, proc = models["clip_score"]
    cos = torch.nn.functional.cosine_similarity(clip_image_embeddings(x, clip, proc), clip_text_embeddings(prompts, clip, proc))
    assert whole["clip_score"] == pytest.approx(cos.mean().item(), abs=1e-5)         # the raw cosine (official code)
    assert whole["aesthetic_score"] == pytest.approx(aesthetic_score(x, clip_dir, aesthetic_file), abs=1e-5)
    u8 = ((x + 1) * 127.5).round().to(torch.uint8)                         # uint8 images, as read from JPEG files
    assert StreamingImageMetrics(models, M).update(u8, ref, prompts).compute()["clip_score"] == pytest.approx(whole["clip_score"], abs=1e-5)
    sm = StreamingImageMetrics(models, M).update(x, ref, prompts)
    size = sm.nbytes()
    for _ in range(3): sm.update(x, ref, prompts)
    assert sm.nbytes() == size and int(sm.state["clip_score.n"]) == 40    # memory independent of the images seen


def test_streaming_fid_input_as_dgm_eval():
    "FID's network gets uint8 images resized to 299 px (dgm-eval's bilinear resize), the Frechet distance of its features."
    from torchmetrics.image.fid import FrechetInceptionDistance
    seen = []
    class FakeInception(torch.nn.Module):
        num_features = 3
        def forward(self, x): seen.append((x.dtype, tuple(x.shape[-2:]))); return x.float().mean((2, 3))
    sm = StreamingImageMetrics({"fid": FrechetInceptionDistance(feature=FakeInception())}, ("fid",))
    ref, x = images(6, size=40, seed=8), images(6, size=40, seed=9) * 0.3
    r = sm.update(x, ref).compute()
    assert set(seen) == {(torch.uint8, (299, 299))} and r["fid"] > 0


def test_frechet_from_sums():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(50, 4, generator=g).double(), (torch.randn(60, 4, generator=g) * 2 + 1).double()
    sums = lambda f: (torch.tensor(float(len(f))), f.sum(0), f.T @ f)
    assert frechet_from_sums(*sums(a), *sums(a)) == pytest.approx(0, abs=1e-8)
    ma, mb, ca, cb = a.mean(0), b.mean(0), torch.cov(a.T), torch.cov(b.T)
    ev, V = torch.linalg.eigh(ca); sa = V @ torch.diag(ev.sqrt()) @ V.T
    ev2 = torch.linalg.eigvalsh(sa @ cb @ sa)
    expected = (ma - mb).square().sum() + ca.trace() + cb.trace() - 2 * ev2.clamp(min=0).sqrt().sum()
    assert frechet_from_sums(*sums(a), *sums(b)) == pytest.approx(expected.item(), rel=1e-6)
    assert math.isnan(frechet_from_sums(*sums(a[:1]), *sums(b)))


# --- the policy helper ----------------------------------------------------------------------------------------

def test_image_metrics_all_available(dino, clip_dir, aesthetic_file):
    ref, x = images(8, seed=3), images(8, seed=4) * 0.5
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        models = load_image_metrics(("fd_dinov2", "clip_score", "aesthetic_score"), dinov2_model=dino.model,
                                    dinov2_image_size=None, clip_model=clip_dir, aesthetic_weights=aesthetic_file)
        r = image_metrics(ref, x, PROMPTS + ["a", "b"], metrics=("fd_dinov2", "clip_score", "aesthetic_score"),
                          models=models, batch_size=3)
    assert not skipped(w)
    assert list(r) == ["fd_dinov2", "clip_score", "aesthetic_score"] and all(math.isfinite(v) for v in r.values())
    assert models["clip_score"][0] is models["aesthetic_score"][0]          # one CLIP for both
    assert r["fd_dinov2"] == pytest.approx(fd_dinov2(ref, x, dino), rel=1e-4)
    assert r["aesthetic_score"] == pytest.approx(aesthetic_score(x, clip_dir, aesthetic_file), abs=1e-5)
    # reusing the loaded models gives the same numbers (the Frechet metric is reset between calls)
    r2 = image_metrics(ref, x, PROMPTS + ["a", "b"], metrics=tuple(r), models=models)
    assert r2 == pytest.approx(r, rel=1e-4)


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


def test_pretrained_source(monkeypatch, tmp_path, clip_dir):
    assert pretrained_source(clip_dir) == dict(local_files_only=True)
    with pytest.raises(MissingWeights, match="no model directory"):
        pretrained_source(tmp_path / "missing", "CLIP score", "clip_model")
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
    assert issubclass(MissingWeights, FileNotFoundError) and issubclass(MetricSkipped, UserWarning)


def test_head_status_fails_fast_offline():
    "The real probe (no monkeypatch): offline it returns None quickly, it never retries for a minute."
    t = time.time()
    status = im._head_status("https://huggingface.co/no-such-org/none/resolve/main/config.json", 5.0)
    assert status is None or status >= 400
    assert time.time() - t < 12


def test_policy_arguments(dino):
    with pytest.raises(ValueError, match="unknown image metrics"):
        load_image_metrics(("fid", "is"))
    with pytest.raises(ValueError, match="prompts"):
        image_metrics(images(3), images(3), PROMPTS[:2], metrics=("fd_dinov2",), dinov2_model=dino.model)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        models = {"clip_score": object()}
        r = image_metrics(images(3), images(3), None, metrics=("clip_score",), models=models)
    assert math.isnan(r["clip_score"]) and len(skipped(w)) == 1 and "no prompts" in skipped(w)[0]
