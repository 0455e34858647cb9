"""Training: the loop, diagnostics hooks, TensorBoard writing, checkpoints."""
