"benchmarks/sdxl_smoke.py --tiny: the GPU smoke run's code path (build a pipeline offline, train both losses, evaluate, load the LoRA in stock diffusers) on CPU."
import importlib.util, json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def test_sdxl_smoke_tiny(tmp_path):
    spec = importlib.util.spec_from_file_location("sdxl_smoke", ROOT / "benchmarks" / "sdxl_smoke.py")
    smoke = importlib.util.module_from_spec(spec); spec.loader.exec_module(smoke)
    r = smoke.main(["--tiny", "--out", str(tmp_path / "results"), "--work", str(tmp_path / "work")])
    saved = json.loads((tmp_path / "results" / "sdxl_smoke_tiny.json").read_text())   # strict JSON: no NaN
    assert saved["losses"].keys() == {"cm", "direct"} == r["losses"].keys() and r["failed"] == []
    assert saved["vae"] == str(tmp_path / "work" / "vae")                          # the preset's separate VAE, not the teacher's
    for loss, m in saved["losses"].items():
        assert m["steps"] == 3 and m["loss_finite"] and m["s_per_step"] > 0, m
        assert m["stock_diffusers"]["lora_loads_and_samples"] and m["stock_diffusers"]["sample_finite"], m["stock_diffusers"]
        assert m["eval_images_per_s"] > 0 and set(m["eval"]) == {"1", "2"}
        assert all(v["ode_error"] is not None for v in m["eval"].values())
    cm, direct = saved["losses"]["cm"]["teacher_image_evals_per_step"], saved["losses"]["direct"]["teacher_image_evals_per_step"]
    assert cm == 2 and direct > cm                   # batch 2: one teacher step for CM, the rest of the trajectory for Direct CM
    assert saved["losses"]["cm"]["teacher_reference_s"] > 0 and saved["losses"]["direct"]["teacher_reference_s"] == 0  # cached
