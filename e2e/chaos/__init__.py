"""Chaos: concurrent kubelet-like workers against a crid that is killed at random moments."""
