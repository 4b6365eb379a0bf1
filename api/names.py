"""What the names, DNS settings and log paths of a CRI request may be.

They become parts of other things: ``CNI_ARGS`` (``K8S_POD_NAME=...;...``),
conmon's name for a container (``k8s_<container>_<pod>_<namespace>_<uid>_<n>``),
lines of the pod's ``resolv.conf``, ``hosts`` and ``hostname``, and the path
of the container's log file. A ``;`` there adds a CNI argument, a newline a
line of resolv.conf (``nameserver`` of the attacker's choosing), a ``/`` or
``..`` another path. So each is checked when the request arrives, before a
dir, namespace, cgroup or row is made, and refused with ``InvalidArgument``.

The rules are Kubernetes' (what kubelet sends; the API server has checked
it), widened only where other clients need it: letters of either case in
names (critest sends ``PodSandbox-for-create-test-<uuid>``) and container
names up to 253 characters, not 63 (critest's reach 85). Hostnames and
``dns_config`` follow RFC 1123 and resolv.conf's limits (3 name servers,
kubelet's 32 search domains in 2048 characters).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Sequence

from cri_api.v1 import api_pb2

from crid.errors import InvalidArgument


@dataclasses.dataclass(frozen=True)
class Rule:
    pattern: re.Pattern[str]
    longest: int
    says: str  # what a value must be, for the error message


_PART = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"  # Kubernetes' label, either case
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"  # RFC 1123: at most 63
# A search domain may hold '_' (kubelet adds the host's own search list to a
# pod's, and resolvers take it), and end with a dot.
_SEARCH_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"

_LETTERS = "letters, digits and '-', starting and ending with a letter or digit"
POD_NAME = Rule(re.compile(rf"{_PART}(?:\.{_PART})*"), 253,
                f"parts of {_LETTERS}, joined by '.' (a DNS-1123 subdomain, either case)")
NAMESPACE = Rule(re.compile(_PART), 63, f"{_LETTERS} (a DNS-1123 label, either case)")
UID = POD_NAME
CONTAINER_NAME = Rule(re.compile(_PART), 253, _LETTERS)
HOSTNAME = Rule(re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*"), 64,
                "an RFC 1123 host name of at most 64 characters (the kernel's limit)")
SEARCH = Rule(re.compile(rf"{_SEARCH_LABEL}(?:\.{_SEARCH_LABEL})*\.?|\."), 254,
              "a domain name")
OPTION = Rule(re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}(?::[A-Za-z0-9_.-]{1,64})?"), 129,
              "a resolv.conf option: NAME or NAME:VALUE (ndots:5, edns0, ...)")

MAX_SERVERS = 3  # resolv.conf's MAXNS: glibc and musl read no more
MAX_SEARCHES = 32  # kubelet's MaxDNSSearchPaths (glibc >= 2.26 reads any number)
MAX_SEARCH_CHARS = 2048  # kubelet's MaxDNSSearchListChars: the searches joined by spaces
MAX_OPTIONS = 32
MAX_PATH = 4096  # PATH_MAX


def check_pod(config: api_pb2.PodSandboxConfig) -> None:
    """RunPodSandbox's names, hostname, DNS settings and log directory."""
    meta = config.metadata
    _check("config.metadata.name", meta.name, POD_NAME)
    _check("config.metadata.namespace", meta.namespace, NAMESPACE)
    _check("config.metadata.uid", meta.uid, UID)
    if config.hostname:
        _check("config.hostname", config.hostname, HOSTNAME)
    check_dns(config.dns_config)
    if config.log_directory:
        _check_path("config.log_directory", config.log_directory)
        if not config.log_directory.startswith("/"):
            raise InvalidArgument(
                f"config.log_directory {_shown(config.log_directory)} must be an absolute path")


def check_container(config: api_pb2.ContainerConfig) -> None:
    """CreateContainer's name and log path."""
    _check("config.metadata.name", config.metadata.name, CONTAINER_NAME)
    if config.log_path:
        check_log_path(config.log_path)


def check_log_path(log_path: str) -> None:
    """A path below the pod's log directory: relative, and never up through ``..``."""
    _check_path("config.log_path", log_path)
    if log_path.startswith("/") or ".." in log_path.split("/"):
        raise InvalidArgument(
            f"config.log_path {_shown(log_path)} must be relative to the pod's log "
            "directory and stay inside it (no leading '/', no '..')")


def check_dns(dns: api_pb2.DNSConfig) -> None:
    """``dns_config``: each entry one word of resolv.conf, within its limits."""
    _at_most("config.dns_config.servers", dns.servers, MAX_SERVERS)
    for server in dns.servers:
        try:
            ipaddress.ip_address(server)
        except ValueError:
            raise InvalidArgument(
                f"config.dns_config.servers: {_shown(server)} is not an IP address") from None
    _at_most("config.dns_config.searches", dns.searches, MAX_SEARCHES)
    for search in dns.searches:
        _check("config.dns_config.searches", search, SEARCH)
    joined = len(" ".join(dns.searches))
    if joined > MAX_SEARCH_CHARS:
        raise InvalidArgument(f"config.dns_config.searches are {joined} characters together; "
                              f"at most {MAX_SEARCH_CHARS} are allowed")
    _at_most("config.dns_config.options", dns.options, MAX_OPTIONS)
    for option in dns.options:
        _check("config.dns_config.options", option, OPTION)


def _check(field: str, value: str, rule: Rule) -> None:
    if not value:
        raise InvalidArgument(f"{field} is required")
    if len(value) > rule.longest:
        raise InvalidArgument(f"{field} {_shown(value)} is {len(value)} characters long; "
                              f"at most {rule.longest} are allowed")
    if not rule.pattern.fullmatch(value):
        raise InvalidArgument(f"{field} {_shown(value)} is not valid: it must be {rule.says}")


def _check_path(field: str, value: str) -> None:
    if len(value) > MAX_PATH:
        raise InvalidArgument(f"{field} is {len(value)} characters long; at most {MAX_PATH}")
    if not value.isprintable():  # a newline, a NUL, any control character
        raise InvalidArgument(f"{field} {_shown(value)} holds a control character")


def _at_most(field: str, values: Sequence[str], most: int) -> None:
    if len(values) > most:
        raise InvalidArgument(f"{field} has {len(values)} entries; at most {most} are allowed")


def _shown(value: str) -> str:
    """The value as an error message quotes it: escaped, and cut if long."""
    return repr(value if len(value) <= 80 else value[:80] + "...")
