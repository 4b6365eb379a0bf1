"""CDI (Container Device Interface) devices for containers.

A device vendor describes its devices in spec files under ``/etc/cdi`` and
``/var/run/cdi`` (``crid.cdi.spec_dirs``); a container names the ones it
wants (``vendor.com/class=name``) in ``CDI_devices`` or ``cdi.k8s.io/*``
annotations, and crid applies the edits the files give for them (device
nodes, mounts, env, hooks) to the container's runtime-spec.

- ``names``: qualified names, and collecting them from a request;
- ``spec``: reading and checking one spec file;
- ``registry``: the spec dirs as a set of devices, re-read when they change;
  ``Registry.apply(spec, names)`` is the one entry callers use;
- ``edits``: applying edits to a runtime-spec dict.
"""
