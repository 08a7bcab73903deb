"""Layer 0, the method on tensors (notebooks 00-07): noise schedules, ODE solvers, classifier-free guidance, the
consistency function, the CM / Direct CM loss, sampling, generic distances between sample sets, LoRA adapters.
Imports torch (and diffusers inside `alphas_cumprod_from_config`), nothing of the layers above."""
