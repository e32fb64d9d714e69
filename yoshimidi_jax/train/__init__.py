"""Training: optimizer, train state, jitted steps, mesh, checkpoints, metrics, the loop."""
