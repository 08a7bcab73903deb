"""Consistency models and Direct consistency models on one solver and one loss.

The package has one subpackage per layer, lowest first; a module imports only from its own layer or a lower one
(`tests/test_layers.py`): `core` (schedules, solvers, guidance, the consistency function, the loss, sampling,
distances, LoRA), `support` (run files and seeds, the config, the digits data and teacher, metrics, image folders),
`presets` (the `Preset` contract and registry, the digits and SDXL presets), `run` (the training loop) and `science`
(the analytic testbed, sweeps, convergence, results).

`import directcms` loads nothing but this file: the names in `__all__`, the ones a user reaches for first, are
imported from their modules on first use (`directcms.solve` is `directcms.core.solvers.solve`)."""
__version__ = "0.1.0"

__all__ = ["solve", "ConsistencyLoss", "consistency_distillation_loss", "cm_sample", "teacher_sample",
           "ConsistencyModel", "alphas_cumprod_from_config", "timestep_grid", "TrainConfig"]

_HOME = {"solve": "core.solvers", "ConsistencyLoss": "core.losses", "consistency_distillation_loss": "core.losses",
         "cm_sample": "core.sampling", "teacher_sample": "core.sampling", "ConsistencyModel": "core.parameterization",
         "alphas_cumprod_from_config": "core.schedules", "timestep_grid": "core.schedules",
         "TrainConfig": "support.config"}


def __getattr__(name: str):
    "A name of __all__, imported from its module the first time it is asked for (PEP 562)."
    if name not in _HOME: raise AttributeError(f"module 'directcms' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value


def __dir__(): return sorted(set(globals()) | set(__all__))
