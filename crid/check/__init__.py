"""``crid check``: what crid's store says against what the kernel and disk hold.

One module per kind of thing that can leak (pods and their network,
cgroups, containers and their files and monitors, images), each a function
``find(view) -> list[Finding]`` over a :class:`~crid.check.view.View` (the
store read read-only plus this node's paths); ``run`` puts them together,
and a finding that is safe to fix carries the daemon's own code to fix it.
Nothing here is imported by the daemon: only ``crid.cli`` calls it.
"""
