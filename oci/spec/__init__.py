"""Runtime-spec (config.json) generation for CRI containers.

Entry point: :func:`build_spec`. One module per concern: ``process`` (argv,
env, cwd), ``user`` (uid/gid/groups from the image's account files),
``mounts``, ``devices``, ``security`` (capabilities, masked paths, seccomp,
AppArmor), ``seccomp_default``, ``namespaces``, ``resources``; ``host`` is
the seam over the node's facts. Imported by the daemon, never by
crid-runtime.
"""

from crid.oci.spec.builder import BuiltSpec, build_spec
from crid.oci.spec.facts import PodFacts
from crid.oci.spec.host import Host
from crid.oci.spec.image_config import ImageConfig
from crid.oci.spec.user import ResolvedUser

__all__ = ["BuiltSpec", "Host", "ImageConfig", "PodFacts", "ResolvedUser", "build_spec"]
