"""Pod sandboxes: the RuntimeService pod calls and the lifecycle behind them.

One module per call (``run``, ``stop``, ``remove``, ``status``, ``listing``,
``update``) over shared pieces: ``records`` (rows in the store), ``cgroups``,
``infra`` (the PID-namespace holder), ``containers`` (the seam the container
code plugs into). Namespaces, CNI and the pod's files are ``crid.network``'s.
"""
