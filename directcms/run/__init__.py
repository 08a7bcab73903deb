"""Layer 3, training (notebooks 30-31): the distillation loop shared by every preset, and seeds trained as one
batched run."""
