"""Experiments reproducing the paper's tables on the phantoms (or real data)."""
