"""crid: a Kubernetes container runtime (CRI) in Python."""

import os as _os

__version__ = "0.1.0"

# In a source checkout (make setup installs it in place, as a plain path
# entry) api/, oci/, image/ and network/ sit beside crid/, and setup.cfg's
# package_dir maps them to crid.api, crid.oci, ...: finding subpackages in
# the parent dir too gives them those names, without the import hook an
# editable install would add to every Python start-up (~15 ms: the runtime
# starts for every container). An installed wheel has them inside crid/.
_tree = _os.path.dirname(_os.path.dirname(__file__))
if not _os.path.isdir(_os.path.join(__path__[0], "oci")) and _os.path.isfile(
        _os.path.join(_tree, "oci", "__init__.py")):
    __path__.append(_tree)
