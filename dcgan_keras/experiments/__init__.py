"""Experiments with trained generators (the paper's section 6 and beyond)."""
