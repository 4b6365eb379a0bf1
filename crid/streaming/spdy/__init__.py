"""SPDY/3.1: framing, header compression, flow control, and the k8s stream protocols over it."""
