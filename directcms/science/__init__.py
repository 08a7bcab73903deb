"""Layer 4, the studies (notebooks 40-48): the analytic testbed, ensembles, sweeps, results and verdicts, the
convergence study, late-window statistics and the digits study."""
