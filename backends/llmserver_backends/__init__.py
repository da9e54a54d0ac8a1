"""Inference engines behind one `ModelBackend` interface (see base.py and registry.py)."""
