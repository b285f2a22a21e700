"""Timing scripts that compare the template with plain PyTorch; run them from the repository root."""
