"""The sdxl-paper evaluation at the paper's protocol on a tiny SDXL, offline: JPEG files scored, memory constant in the
number of samples, the teacher reference resumed chunk by chunk after a kill, 2 processes equal to 1, Table 1 from
run folders. FD-DINOv2, CLIP and aesthetic scores use tiny random local models; FID is skipped (no Inception offline)."""
import gc, json, math, os, subprocess, sys, warnings
from pathlib import Path
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from test_sdxl import tiny_sdxl, _params            # noqa: F401  (the tiny SDXL fixture)
from test_image_metrics import tiny_clip_dir

ROOT = Path(__file__).resolve().parents[1]
SCORED = ("fd_dinov2", "clip_score", "aesthetic_score")


@pytest.fixture(scope="module")
def metric_weights(tmp_path_factory):
    "metrics_weights for a tiny DINOv2, a tiny CLIP (projection 16) and an aesthetic predictor for it, all local."
    from transformers import Dinov2Config, Dinov2Model
    from directcms.support.image_metrics import AestheticPredictor
    d = tmp_path_factory.mktemp("metric-models")
    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                             image_size=32, patch_size=8)).save_pretrained(d / "dino")
    torch.save(AestheticPredictor(16).state_dict(), d / "aesthetic.pth")
    return dict(dinov2_model=str(d / "dino"), dinov2_image_size=32, clip_model=str(tiny_clip_dir(d / "clip")),
                aesthetic_weights=str(d / "aesthetic.pth"), missing="skip")          # FID: no Inception offline


def _cfg(root, tmp, weights, **kw):
    from directcms.support.config import TrainConfig
    p = {**_params(root, "cm", tmp / "out"), "assets_dir": str(tmp / "assets"), "metrics_weights": weights, **kw}
    return TrainConfig.from_params(p)


def _preset(cfg):
    from directcms.presets.sdxl import SDXLPreset
    from directcms.run.training import build_student
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                 # FID skipped offline
        preset = SDXLPreset(cfg, progress=False)
    student, teacher_eps = build_student(preset, cfg)
    return preset, student, teacher_eps


def test_reference_resumes_after_a_kill(tiny_sdxl, metric_weights, tmp_path, monkeypatch):
    import directcms.presets.sdxl_eval as sx
    cfg = _cfg(tiny_sdxl, tmp_path / "a", metric_weights, num_eval=6, eval_batch_size=2)
    preset, _, teacher_eps = _preset(cfg)
    saved, real = [], sx._save_chunk
    def dies_after_two(z, path):
        if len(saved) == 2: raise KeyboardInterrupt("killed")
        saved.append(path.name); real(z, path)
    monkeypatch.setattr(sx, "_save_chunk", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        preset.build_reference(teacher_eps, "cpu", progress=False)
    d = preset.reference_dir()
    assert sorted(p.name for p in (d / "chunks").glob("*.pt")) == ["000000-000002.pt", "000002-000004.pt"]
    done = {p: p.stat().st_mtime_ns for p in (d / "chunks").glob("*.pt")}
    saved.clear()
    monkeypatch.setattr(sx, "_save_chunk", lambda z, path: (saved.append(path.name), real(z, path)))
    preset.build_reference(teacher_eps, "cpu", progress=False)
    assert saved == ["000004-000006.pt"]                                        # only the missing chunk is sampled
    assert all(p.stat().st_mtime_ns == t for p, t in done.items())             # finished chunks reused untouched
    assert sorted(p.name for p in (d / "images").glob("*.jpg")) == sorted(f"{i}.jpg" for i in range(6))
    # identical to an uninterrupted build in another assets folder
    fresh, _, teacher_eps2 = _preset(_cfg(tiny_sdxl, tmp_path / "b", metric_weights, num_eval=6, eval_batch_size=2))
    fresh.build_reference(teacher_eps2, "cpu", progress=False)
    assert torch.equal(preset.reference_latents(0, 6), fresh.reference_latents(0, 6))
    assert torch.equal(preset.reference_latents(1, 4), fresh.reference_latents(0, 6)[1:4])


def _live_bytes(exclude=()):
    "Bytes of every tensor storage alive in this process (shared storages counted once), minus the excluded ones."
    gc.collect()
    seen = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                  # isinstance on deprecated torch objects warns
        tensors = [o for o in gc.get_objects() if isinstance(o, torch.Tensor)]
    for o in tensors:
        if o.device.type == "cpu":
            try: st = o.untyped_storage()
            except Exception: continue
            if st.data_ptr() and st.data_ptr() not in exclude: seen[st.data_ptr()] = st.nbytes()
    return sum(seen.values())


def test_streaming_memory_does_not_grow_with_samples(tiny_sdxl, metric_weights, tmp_path, monkeypatch):
    from directcms.support.image_metrics import StreamingImageMetrics
    from directcms.core.sampling import teacher_sample
    peaks = {}
    real_update = StreamingImageMetrics.update
    def measured(self, *a, **k):
        out = real_update(self, *a, **k)
        peaks[current] = max(peaks.get(current, 0), _live_bytes(exclude))
        return out
    monkeypatch.setattr(StreamingImageMetrics, "update", measured)
    base = {}
    for n in (4, 16):
        preset, _, teacher_eps = _preset(_cfg(tiny_sdxl, tmp_path / f"n{n}", metric_weights, num_eval=n, eval_batch_size=2))
        preset.build_reference(teacher_eps, "cpu", progress=False)
        exclude = {preset.noise.untyped_storage().data_ptr()}          # the fixed noise file is memory-mapped
        ac = preset.alphas_cumprod
        fn = lambda z, cond, s: teacher_sample(teacher_eps, z, ac, 2, "ddim", cond)
        current, base[n] = n, _live_bytes(exclude)
        m, kept = preset.evaluate_samples("2-step", fn, tmp_path / f"n{n}" / "imgs", "cpu", progress=False, keep=0)
        assert kept is None and all(math.isfinite(m[k]) for k in ("ode_error", *SCORED)), m
        assert len(list((tmp_path / f"n{n}" / "imgs").glob("*.jpg"))) == n
        del preset, teacher_eps
    per_sample = 3 * 64 * 64 * 4                                        # one decoded float image
    growth = {n: peaks[n] - base[n] for n in base}                      # what evaluation holds beyond the loaded models
    assert growth[16] - growth[4] < per_sample, growth                   # 12 more samples: less than one image more
    # the measure sees what an evaluator that kept its images would hold
    before = _live_bytes()
    kept = [torch.zeros(3, 64, 64) for _ in range(12)]
    assert _live_bytes() - before >= 12 * per_sample


def test_scores_follow_the_official_order(tiny_sdxl, metric_weights, tmp_path):
    "As test.py: CLIP and aesthetic scores of each decoded image before it is saved, FD-DINOv2 of the JPEG files read back."
    from directcms.support.image_metrics import image_metrics
    from directcms.presets.sdxl_eval import load_jpeg, to_uint8, JPEG_QUALITY
    cfg = _cfg(tiny_sdxl, tmp_path, metric_weights, num_eval=4, eval_batch_size=2, eval_steps=[1])
    preset, student, teacher_eps = _preset(cfg)
    metrics, extra = preset.evaluate_student(student, teacher_eps, progress=False)
    jpegs = load_jpeg([tmp_path / "out" / "images" / "1_steps" / f"{i}.jpg" for i in range(4)])
    decoded = to_uint8(preset.decode(extra["samples"][1]))                  # the 4 samples, before saving
    ref_jpegs = load_jpeg([preset.reference_dir() / "images" / f"{i}.jpg" for i in range(4)])
    score = lambda imgs, ref: image_metrics(ref, imgs, preset.prompts, metrics=SCORED, models=preset.metric_models, batch_size=3)
    before, files = score(decoded, ref_jpegs), score(jpegs, ref_jpegs)
    assert metrics["1"]["fd_dinov2"] == pytest.approx(files["fd_dinov2"], rel=1e-4, abs=1e-6)
    for k in ("clip_score", "aesthetic_score"):
        assert metrics["1"][k] == pytest.approx(before[k], rel=1e-5, abs=1e-7), k
        assert abs(before[k] - files[k]) > 1e-5, (k, before[k], files[k])     # JPEG changes the score: the test can tell
    assert -1 <= metrics["1"]["clip_score"] <= 1                          # the raw cosine, not 100 cos
    assert extra["samples"][1].shape == (4, 4, 32, 32) and JPEG_QUALITY == 75
    t = extra["reference"]["metrics"]
    assert set(t) == {"10", "1", "real"} and t["10"]["ode_error"] == 0 and abs(t["10"]["fd_dinov2"]) < 1e-6
    assert t["real"]["fd_dinov2"] > 0 and set(t["real"]) == {"fid", "fd_dinov2"}      # the teacher against the data folder
    ref_decoded = to_uint8(preset.decode(preset.reference_latents(0, 4)))  # the teacher's row: its decoded images too
    assert t["10"]["clip_score"] == pytest.approx(score(ref_decoded, ref_jpegs)["clip_score"], rel=1e-5, abs=1e-7)
    assert json.loads((preset.reference_dir() / "metrics.json").read_text())["rows"].keys() == t.keys()


SCRIPT = r'''
import json, sys, torch, warnings
from accelerate import Accelerator
from directcms.support.config import TrainConfig
from directcms.presets.sdxl import SDXLPreset
from directcms.run.training import build_student, evaluate
cfg = TrainConfig.from_params(json.loads(open(sys.argv[1]).read()))
acc = Accelerator(cpu=True)
with acc.main_process_first(), warnings.catch_warnings():
    warnings.simplefilter("ignore")
    preset = SDXLPreset(cfg, progress=False)
torch.manual_seed(cfg.seed)                          # LoRA A matrices: the same in every process and run
student, teacher_eps = build_student(preset, cfg)
g = torch.Generator().manual_seed(1)
for n, p in student.named_parameters():              # a student that differs from the teacher, the same everywhere
    if "lora_B" in n: p.data = 0.05 * torch.randn(p.shape, generator=g)
preset.to(acc.device); student.to(acc.device)
metrics, extra = evaluate(cfg, preset, student, teacher_eps, acc, shard=True)
if acc.is_main_process:
    json.dump(dict(processes=acc.num_processes, eval=metrics, teacher=extra["reference"]["metrics"], first=extra["samples"][2][:2].tolist()), open(sys.argv[2], "w"))
'''


def test_two_processes_give_the_metrics_of_one(tiny_sdxl, metric_weights, tmp_path):
    (tmp_path / "ev.py").write_text(SCRIPT)
    # torchrun starts two real gloo processes (`accelerate launch --cpu --num_processes 2` would start only one)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "ACCELERATE_USE_CPU": "true"}
    res = {}
    for procs in (1, 2):
        d = tmp_path / f"p{procs}"
        p = {**_params(tiny_sdxl, "cm", d / "out"), "assets_dir": str(d / "assets"), "metrics_weights": metric_weights,
             "num_eval": 6, "eval_batch_size": 2, "eval_steps": [1, 2]}
        d.mkdir(); (d / "params.json").write_text(json.dumps(p))
        launch = ([sys.executable] if procs == 1 else
                  [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"])
        r = subprocess.run([*launch, str(tmp_path / "ev.py"), str(d / "params.json"), str(d / "res.json")],
                           capture_output=True, text=True, timeout=900, env=env)
        assert r.returncode == 0, r.stderr[-3000:]
        res[procs] = json.loads((d / "res.json").read_text())
        assert sorted(int(f.stem) for f in (d / "out" / "images" / "2_steps").glob("*.jpg")) == list(range(6))
        assert len(list((d / "assets").glob("teacher_*/chunks/*.pt"))) == 3
    one, two = res[1], res[2]
    assert (one["processes"], two["processes"]) == (1, 2)                  # the sharded run really had two processes
    assert one["eval"].keys() == two["eval"].keys() == {"1", "2"}
    for part in ("eval", "teacher"):
        for k, blk in one[part].items():
            for m, v in blk.items():
                if v is None or (isinstance(v, float) and math.isnan(v)): assert m == "fid"; continue
                assert two[part][k][m] == pytest.approx(v, rel=1e-4, abs=1e-6), (part, k, m)
    assert torch.allclose(torch.tensor(one["first"]), torch.tensor(two["first"]), atol=1e-5)


def test_figures_notebook_sdxl_table1(tiny_sdxl, metric_weights, tmp_path):
    "figures.ipynb with preset sdxl-paper writes the paper's Table 1 columns, the teacher's rows and the sample figure."
    import csv
    import papermill as pm
    runs, figs = tmp_path / "runs", tmp_path / "figs"
    overrides = dict(resolution=64, lora_rank=4, mixed_precision="no", eval_batch_size=2, checkpoint_every=1, vae="",
                     metrics_weights=metric_weights)
    pm.execute_notebook(str(ROOT / "nbs" / "figures.ipynb"), str(tmp_path / "figures.ipynb"), cwd=str(tmp_path),
                        kernel_name="python3", progress_bar=False,
                        parameters=dict(preset="sdxl-paper", seeds=1, max_steps=2, batch_size=2, num_eval=4, num_intervals=10,
                                        teacher=str(tiny_sdxl / "teacher"), data=str(tiny_sdxl / "data"),
                                        runs_dir=str(runs), figures_dir=str(figs), overrides=overrides))
    for f in ("table1.csv", "table1.md", "samples.png", "README.md"): assert (figs / f).stat().st_size > 200, f
    rows = list(csv.DictReader(open(figs / "table1.csv")))
    assert [(r["method"], int(r["steps"])) for r in rows] == [("Teacher (N = 10 steps, reference)", 10),
                                                             ("Teacher (N = 10 steps) vs real images", 10)] + [
        (m, k) for m in ("Teacher (DDIM, k steps)", "CM", "Direct CM") for k in (1, 2, 4)]
    for c in ("ode_error", "fid", "fd_dinov2", "clip_score", "aesthetic_score"): assert f"{c}_mean" in rows[0]
    real, rows = rows[1], rows[:1] + rows[2:]
    assert float(real["fd_dinov2_mean"]) > 0 and all(math.isnan(float(real[f"{c}_mean"])) for c in ("ode_error", "clip_score"))
    for r in rows:
        for c in ("ode_error", "fd_dinov2", "clip_score", "aesthetic_score"): assert math.isfinite(float(r[f"{c}_mean"])), (r, c)
        assert -1 <= float(r["clip_score_mean"]) <= 1
    assert float(rows[0]["ode_error_mean"]) == 0 and float(rows[4]["ode_error_mean"]) > 0
    md = (figs / "table1.md").read_text()
    assert "FD-DINOv2 vs teacher" in md and "CLIP score" in md and "skipped" in md        # FID: no Inception offline
    for loss in ("cm", "direct"):
        assert (runs / f"sdxl-paper-{loss}-seed0" / "images" / "4_steps" / "3.jpg").exists()
    assert len(list((runs / "sdxl-paper").glob("teacher_*/images/*.jpg"))) == 4
