"""Container and pod statistics: cgroup readers, CPU rates, writable-layer and
network usage, and the CRI calls that report them."""
