"""science.ipynb at smoke scale writes every output; runs are cached (a second call skips finished runs); the verdict
follows synthetic numbers."""
import json
from pathlib import Path
import pytest
import torch
import directcms.science.convergence as conv
import directcms.science.sweeps as sweeps
from directcms.science.testbed import run_key, analytic_settings
from directcms.science.sweeps import (analytic_experiment, analytic_grid, run_analytic_sweep, digits_configs, digits_finished,
                              run_digits_sweep, SCALES)
from directcms.science.sweep_results import result_rows, compare, sweep_verdict

ROOT = Path(__file__).resolve().parents[1]
FILES = ("science_k_sweep.png", "science_capacity.png", "science_gmm2d.png", "science.md", "science_analytic.csv",
         "science_digits.csv")
TINY = dict(fit_steps=10, train_steps=2, batch_size=32, num_eval=64)


def test_science_notebook_smoke(tmp_path, monkeypatch):
    import os, papermill as pm
    # the kernel runs in tmp_path: make it import this checkout's directcms, whatever the installed one points to
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    runs, figs = tmp_path / "runs", tmp_path / "figs"
    pm.execute_notebook(str(ROOT / "nbs" / "science.ipynb"), str(tmp_path / "science.ipynb"), cwd=str(tmp_path),
                        kernel_name="python3", progress_bar=False,
                        parameters=dict(scale="smoke", runs_dir=str(runs), figures_dir=str(figs), workers=1,
                                        digits_axes=dict(rank=[4])))        # a slice of the scale's digits grid
    for f in FILES: assert (figs / f).stat().st_size > 200, f
    md = (figs / "science.md").read_text()
    assert "## Verdict" in md
    call = md.split("Written by `")[1].split("`")[0]                    # the command that reproduces it
    assert call.startswith("papermill nbs/science.ipynb") and "-p scale smoke" in call and f"-p figures_dir {figs}" in call
    assert call.endswith("""-y '{"digits_axes": {"rank": [4]}}'""")
    verdict_text = md.split("## Verdict")[1].split("##")[0]
    assert "comparisons (two values of k" in verdict_text and "standard errors" in verdict_text
    assert "digits" in verdict_text.lower()
    assert "Headline: 1-step samples" in verdict_text and "2- and 4-step samples, apart" in verdict_text
    assert "expected by chance" in verdict_text
    smoke = SCALES["smoke"]
    n_analytic = len(analytic_grid(**smoke["analytic"]))
    assert len(list((runs / "science" / "analytic").glob("*.json"))) == n_analytic
    d = smoke["digits"]
    n_digits = len(d["k"]) * 1 * len(d["w"]) * len(d["budgets"]) * d["seeds"]     # rank [4] only
    assert len(list((runs / "science" / "digits").glob("*/metrics.json"))) == n_digits
    assert (runs / "digits" / "teacher").is_dir()           # the digits assets are shared in runs_dir/digits


def test_analytic_run_is_cached(tmp_path, monkeypatch):
    calls = []
    real = sweeps.distill_ensemble                 # analytic_group trains the runs to do as one ensemble
    monkeypatch.setattr(sweeps, "distill_ensemble", lambda *a, **k: calls.extend((m["N"], m["k"]) for m in a[3]) or real(*a, **k))
    kw = dict(d=2, w=1.0, N=10, width="small", seed=0, **TINY)
    r1 = analytic_experiment(tmp_path, tmp_path / "cache", k=1, **kw)
    assert calls == [(10, 1)]
    files = list(tmp_path.glob("*.json"))
    assert [p.name for p in files] == [f"{run_key(analytic_settings(k=1, **kw))}.json"]
    r2 = analytic_experiment(tmp_path, tmp_path / "cache", k=1, **kw)       # finished: read, not run
    assert r2 == r1 and calls == [(10, 1)]
    other = analytic_experiment(tmp_path, tmp_path / "cache", k=1, **{**kw, "train_steps": 3})   # other sizes: new run
    assert len(calls) == 2 and len(list(tmp_path.glob("*.json"))) == 2 and other["settings"]["train_steps"] == 3


def test_sweep_skips_finished_runs(tmp_path, monkeypatch):
    calls = []
    real = sweeps.distill_ensemble
    monkeypatch.setattr(sweeps, "distill_ensemble", lambda *a, **k: calls.extend(m["k"] for m in a[3]) or real(*a, **k))
    grid = dict(N=[10], w=[3.0], d=[2], width=["small"], seeds=1, **TINY)
    first = run_analytic_sweep(analytic_grid(k=[1, "all"], **grid), tmp_path, workers=1, progress=False)
    assert calls == [1, "all"]
    again = run_analytic_sweep(analytic_grid(k=[1, "all"], **grid), tmp_path, workers=1, progress=False)
    assert again == first and calls == [1, "all"]                        # nothing run the second time
    more = run_analytic_sweep(analytic_grid(k=[1, 2, "all"], **grid), tmp_path, workers=1, progress=False)
    assert calls == [1, "all", 2] and [r["settings"]["k"] for r in more] == [1, 2, "all"]
    assert more[0] == first[0] and more[2] == first[1]                   # the finished runs were reused unchanged


def test_digits_sweep_skips_finished_runs(tmp_path, monkeypatch):
    cfgs = digits_configs([1, "all"], [0, 16], [3.0], [250], 1, str(tmp_path))
    assert [c.target_steps_resolved for c in cfgs] == [1, 1, "all", "all"]
    assert [c.loss for c in cfgs] == ["cm", "cm", "direct", "direct"]
    assert all(c.assets_dir == f"{tmp_path}/digits" for c in cfgs) and len({c.output_dir for c in cfgs}) == 4
    for c in cfgs:                                                       # pretend they all finished
        Path(c.output_dir).mkdir(parents=True)
        (Path(c.output_dir) / "metrics.json").write_text(json.dumps(dict(loss=c.loss, config=c.to_dict(), eval={
            "1": dict(ode_error=0.1, fd_real=1.0, fd_teacher=1.0, class_accuracy=1.0)})))
    import directcms.run.training
    monkeypatch.setattr(directcms.run.training, "run", lambda *a, **k: pytest.fail("a finished run was trained again"))
    out = run_digits_sweep(cfgs, progress=False)
    assert len(out) == 4 and all(digits_finished(c) for c in cfgs)
    rows = result_rows(out)
    assert [(r["k"], r["rank"], r["budget"]) for r in rows] == [(1, 0, 250), (1, 16, 250), ("all", 0, 250), ("all", 16, 250)]
    changed = digits_configs([1], [0], [3.0], [250], 1, str(tmp_path), lr=3e-4)[0]
    assert not digits_finished(changed)                                  # another configuration is not reused


def _rows(cells, seeds=4, noise=0.01, steps=1):
    "cells: name -> {k: (ode, sw)}; seed noise of mean 0 on every k but the first."
    e = [1, -1, 0.5, -0.5, 0.25, -0.25]
    rows = []
    for name, by_k in cells.items():
        for i, (k, (o, q)) in enumerate(by_k.items()):
            for s in range(seeds):
                n = noise * e[s] * (i > 0)
                rows.append(dict(d=2, N=10, w=3.0, width=name, k=k, seed=s, steps=steps, ode_error_teacher=o + n,
                                 sw=q - n, precision=1 - q + n))
    return rows


def test_verdict_logic_on_synthetic_numbers():
    rows = _rows({"paper": {1: (1.0, 1.0), "all": (0.5, 1.5)},       # lower ODE error, worse samples
                  "agree": {1: (1.0, 1.0), "all": (0.5, 0.5)},       # lower ODE error, better samples
                  "flat": {1: (1.0, 1.0), "all": (0.5, 1.005)},      # samples differ by less than 2 SE
                  "noise": {1: (1.0, 1.0), "all": (1.0, 2.0)}})      # ODE error unresolved
    cmp = {c["width"]: c for c in compare(rows)}
    assert cmp["paper"]["outcome"] == "inconsistent" and cmp["paper"]["better_ode"] == "all"
    assert cmp["paper"]["d_ode"] == pytest.approx(-0.5) and cmp["paper"]["d_quality"] == pytest.approx(0.5)
    assert cmp["agree"]["outcome"] == "consistent"
    assert cmp["flat"]["outcome"] == "unresolved samples"
    assert cmp["noise"]["outcome"] == "unresolved ODE"
    v = sweep_verdict(list(cmp.values()))
    assert "Of 4 comparisons" in v and "3 differ in ODE error by more than 2 standard errors" in v
    assert "significantly worse samples (sliced W2) in 1, significantly better samples in 1, and no resolved difference in 1" in v
    assert "in 1 setting(s): d=2, N=10, w=3, width=paper" in v and "None" not in v   # rows without a budget
    # orientation: when k=1 has the lower ODE error, it is the one named, and its samples are judged
    rev = compare(_rows({"rev": {1: (0.5, 2.0), "all": (1.0, 1.0)}}))[0]
    assert rev["better_ode"] == 1 and rev["other"] == "all" and rev["outcome"] == "inconsistent"
    # a higher-is-better quality measure flips the sign
    hib = {c["width"]: c["outcome"] for c in compare(rows, quality="precision", higher_is_better=True)}
    assert hib["paper"] == "inconsistent" and hib["agree"] == "consistent"
    # all three pairs of three k values are compared
    three = compare(_rows({"x": {1: (1.0, 1.0), 2: (0.8, 1.2), "all": (0.5, 1.5)}}))
    assert sorted((str(c["better_ode"]), str(c["other"])) for c in three) == [("2", "1"), ("all", "1"), ("all", "2")]
    assert all(c["outcome"] == "inconsistent" for c in three)


def test_verdict_needs_seeds_and_reports_consistency():
    assert sweep_verdict(compare(_rows({"a": {1: (1.0, 1.0), "all": (0.5, 1.5)}}, seeds=1))).startswith("Not assessed")
    assert "never came with significantly worse samples" in sweep_verdict(compare(_rows({"a": {1: (1.0, 1.0), "all": (0.5, 0.5)}})))
    assert sweep_verdict([]).startswith("No comparisons")
    # identical numbers over seeds (SE 0) still count when the difference is not 0
    assert compare(_rows({"a": {1: (1.0, 1.0), "all": (0.5, 1.5)}}, noise=0.0))[0]["outcome"] == "inconsistent"


def test_chance_level_counts_only_comparisons_that_can_be_null():
    "Known answer: each unresolved comparison stands for 1/(1-2p) null ones, p the one-sided t tail with its seeds."
    from scipy.stats import t as student_t
    from directcms.science.sweep_results import chance_worse, chance_sentence, null_tail, tally
    p5, p3 = student_t.sf(2.0, 4), student_t.sf(2.0, 2)
    assert null_tail(5) == pytest.approx(p5) and null_tail(3) == pytest.approx(p3)
    mk = lambda outcome, n, i: dict(d=2, N=10, w=1.0, width=str(i), budget=1, steps=1, better_ode="all", other=1,
                                    n_seeds=n, d_ode=-1, se_ode=0.1, d_quality=0, se_quality=1, outcome=outcome)
    cs = ([mk("unresolved samples", 5, i) for i in range(10)] + [mk("unresolved samples", 3, 10 + i) for i in range(3)]
          + [mk("consistent", 5, 20 + i) for i in range(100)] + [mk("inconsistent", 5, 200 + i) for i in range(7)]
          + [mk("unresolved ODE", 5, 300 + i) for i in range(50)])      # unresolved ODE: not a test of samples at all
    expected = 10 * p5 / (1 - 2 * p5) + 3 * p3 / (1 - 2 * p3)
    assert chance_worse(cs) == pytest.approx(expected)
    t = tally(cs)
    assert (t["ode_resolved"], t["worse"], t["better"], t["unresolved"]) == (120, 7, 100, 13)
    assert t["chance"] == pytest.approx(expected)
    # the old benchmark (p times every resolved comparison) would have said about 7: far above the right one
    assert 120 * p5 > 6 and expected < 1
    s = chance_sentence(cs)
    assert f"about {expected:.1f} false 'worse' are expected; observed 7 ({7 / expected:.1f}x)" in s
    assert "Chance level" in sweep_verdict(cs)


def test_degenerate_settings_are_students_narrower_than_the_data():
    from directcms.science.sweep_results import degenerate
    assert degenerate(dict(kind="analytic", d=64, width="small"))           # 32 < 64
    assert not degenerate(dict(kind="analytic", d=64, width="large"))       # 256 >= 64
    assert not degenerate(dict(kind="analytic", d=16, width="small"))
    assert not degenerate(dict(kind="digits", rank=4))


def test_convergence_notebook_smoke(tmp_path, monkeypatch):
    "convergence.ipynb at smoke scale writes its figures, CSV and md; a second call reuses the finished settings."
    import os, papermill as pm
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    runs, figs = tmp_path / "runs", tmp_path / "figs"
    run = lambda: pm.execute_notebook(str(ROOT / "nbs" / "convergence.ipynb"), str(tmp_path / "c.ipynb"), cwd=str(tmp_path),
                                      kernel_name="python3", progress_bar=False,
                                      parameters=dict(scale="smoke", runs_dir=str(runs), figures_dir=str(figs), workers=1))
    run()
    for f in ("science_convergence.png", "science_errors.png", "science_convergence.csv", "science_convergence.md"):
        assert (figs / f).stat().st_size > 200, f
    md = (figs / "science_convergence.md").read_text()
    assert "-p scale smoke" in md and "| 2 | 10 | 3 | k=all |" in md and "EMA target" in md
    jsons = list((runs / "science" / "convergence").glob("*.json"))
    assert len(jsons) == 1 and json.loads(jsons[0].read_text())["stopped"] == "cap"
    stamp = jsons[0].stat().st_mtime_ns
    run()
    assert jsons[0].stat().st_mtime_ns == stamp                 # finished: read, not retrained


def test_convergence_resumes_after_a_kill(tmp_path, monkeypatch):
    "A run killed between state saves resumes from its state and ends with the measures of an uninterrupted run."
    kw = dict(fit_steps=10, batch_size=16, num_eval=64, first_eval=8, max_steps=32, save_every=5)
    mem = conv.convergence_members([1, "all"], 2)
    whole = conv.convergence_setting(2, 10, 3.0, mem, tmp_path / "a", tmp_path / "c", progress=False, **kw)
    train, calls = conv.EnsembleDistiller.train, []
    def dies(self, steps):
        calls.append(steps)
        if len(calls) == 4: raise KeyboardInterrupt           # the 4th chunk: after saves at steps 5, 8 and 10
        return train(self, steps)
    monkeypatch.setattr(conv.EnsembleDistiller, "train", dies)
    with pytest.raises(KeyboardInterrupt):
        conv.convergence_setting(2, 10, 3.0, mem, tmp_path / "b", tmp_path / "c", progress=False, **kw)
    monkeypatch.setattr(conv.EnsembleDistiller, "train", train)
    state = torch.load(next((tmp_path / "b").glob("*.pt")), weights_only=False)
    assert state["step"] == 10
    again = conv.convergence_setting(2, 10, 3.0, mem, tmp_path / "b", tmp_path / "c", progress=False, **kw)
    assert [c["step"] for c in again["curves"]] == [0, 8, 16, 32]
    for a, b in zip(again["curves"], whole["curves"]):
        for qa, qb in zip(a["members"], b["members"]):
            assert qa["sw"] == pytest.approx(qb["sw"], rel=1e-9) and qa["ode_error_teacher"] == pytest.approx(qb["ode_error_teacher"], rel=1e-9)


def test_convergence_grid_checks_before_work():
    with pytest.raises(ValueError, match="settings"): conv.convergence_grid("converged", dict(settings=[[7, 3.0]]))
    with pytest.raises(ValueError, match="k="): conv.convergence_grid("converged", dict(k=[0]))
    with pytest.raises(ValueError, match="batch_size"): conv.convergence_grid("converged", dict(batch_size=0))
    g = conv.convergence_grid("converged")
    assert g["d"] == [2, 16, 64] and g["seeds"] == 5 and conv.CONVERGENCE_DEFAULTS["max_steps"] >= 20000
