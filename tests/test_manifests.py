"""The files in ``manifests/`` are what they claim to be (item 6 of issue 13).

Owns the checks of the node-facing files: every YAML file is a Kubernetes
object whose every field its model in the ``kubernetes`` client knows (or one
of the few non-Kubernetes files, checked for what they are); the
RuntimeClasses name handlers the daemon has; ``crid.toml`` is every key with
its default; the systemd unit and the DaemonSet pass crid only flags it has;
the crictl examples parse as the CRI messages they stand for.

The client's deserializer drops keys it does not know without a word, so a
typo (``privilegd: true``) would pass it and be ignored by the API server's
non-strict decoding too. ``unknown_fields`` walks a document against the
client's model classes (``openapi_types`` and ``attribute_map``) first and
reports every key no model has; only then is the object built by the client's
own deserializer. The daemon's answers come from the real CLI (``crid
--help``, ``crid config``), not from importing its parser.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from cri_api.v1 import api_pb2
from google.protobuf import json_format
from kubernetes import client
from kubernetes.client import models

from crid.config import DEFAULT_CONFIG_FILE, SETTINGS, Config

TOP = Path(__file__).resolve().parent.parent
MANIFESTS = TOP / "manifests"
CRID = Path(sys.executable).parent / "crid"
# YAML under manifests/ that is not a Kubernetes object; each has its own test below.
NOT_KUBERNETES = {"examples/crictl.yaml"}
# Signals on which crid drains and exits 0 (crid.daemon.serve).
STOP_SIGNALS = {"TERM", "SIGTERM", "15", "INT", "SIGINT", "2"}
# The keys crictl reads from its config file (cri-tools, pkg/common/config.go).
CRICTL_KEYS = {"runtime-endpoint", "image-endpoint", "timeout", "debug",
               "pull-image-on-create", "disable-pull-on-run"}
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


# --- reading the manifests ---------------------------------------------------


def yaml_files() -> list[Path]:
    return sorted([*MANIFESTS.rglob("*.yaml"), *MANIFESTS.rglob("*.yml")])


def documents(path: Path) -> list[Any]:
    # An empty document (a trailing ---) is not an object.
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def kubernetes_documents() -> list[Any]:
    """Every Kubernetes object in manifests/, as pytest params named file#index."""
    return [pytest.param(doc, id=f"{path.relative_to(MANIFESTS)}#{i}")
            for path in yaml_files() if str(path.relative_to(MANIFESTS)) not in NOT_KUBERNETES
            for i, doc in enumerate(documents(path))]


def objects_of_kind(kind: str) -> list[dict[str, Any]]:
    return [p.values[0] for p in kubernetes_documents() if p.values[0].get("kind") == kind]


# --- the strict walker -------------------------------------------------------

# The client's scalar type names, and what a parsed YAML value of each may be.
SCALARS: dict[str, tuple[type, ...]] = {
    "str": (str,), "bytes": (str,), "datetime": (str,), "date": (str,),
    "int": (int,), "float": (int, float), "bool": (bool,),
}
_LIST = re.compile(r"List\[(.+)\]")
_DICT = re.compile(r"Dict\[str, (.+)\]")
_OPTIONAL = re.compile(r"Optional\[(.+)\]")


def unknown_fields(value: Any, type_name: str, where: str = "") -> list[str]:
    """What is wrong with ``value`` as the client type ``type_name`` (``V1DaemonSet``,
    ``List[V1Container]``, ``Dict[str, str]``, ``int``, ...): keys its model has no
    attribute for, and values of the wrong shape. Each problem names its path."""
    if value is None:
        return []
    if m := _OPTIONAL.fullmatch(type_name):
        return unknown_fields(value, m[1], where)
    if m := _LIST.fullmatch(type_name):
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {value!r}"]
        return [p for i, item in enumerate(value)
                for p in unknown_fields(item, m[1], f"{where}[{i}]")]
    if m := _DICT.fullmatch(type_name):
        if not isinstance(value, dict):
            return [f"{where}: expected a map, got {value!r}"]
        bad_keys = [f"{where}.{key}: a key must be a string"
                    for key in value if not isinstance(key, str)]
        return bad_keys + [p for key, item in value.items()
                           for p in unknown_fields(item, m[1], f"{where}.{key}")]
    if type_name == "object":  # int-or-string (ports), free-form (raw extensions)
        return []
    if type_name in SCALARS:
        # bool is an int in Python; in Kubernetes a port of `true` is a wrong type.
        ok = isinstance(value, SCALARS[type_name]) and (
            type_name == "bool" or not isinstance(value, bool))
        return [] if ok else [f"{where}: expected {type_name}, got {value!r}"]
    model = getattr(models, type_name, None)
    if model is None or not hasattr(model, "attribute_map"):
        raise ValueError(f"{where}: the walker does not know the client type {type_name!r}")
    if not isinstance(value, dict):
        return [f"{where}: expected a {type_name} object, got {value!r}"]
    attribute = {key: name for name, key in model.attribute_map.items()}
    problems: list[str] = []
    for key, item in value.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in attribute:
            problems.append(f"{path}: unknown field of {type_name}")
        else:
            problems.extend(unknown_fields(item, model.openapi_types[attribute[key]], path))
    return problems


def model_name(api_version: str, kind: str) -> str:
    """The client's model for a kind: ``apps/v1`` ``DaemonSet`` -> ``V1DaemonSet``."""
    version = api_version.rpartition("/")[2]
    name = version[:1].upper() + version[1:] + kind
    if not hasattr(models, name):
        raise ValueError(f"no model {name} in the kubernetes client for {api_version} {kind}")
    return name


def build(doc: dict[str, Any]) -> Any:
    """The object, strictly: unknown keys are errors, then the client's own deserializer."""
    name = model_name(doc["apiVersion"], doc["kind"])
    problems = unknown_fields(doc, name)
    if problems:
        raise ValueError("\n".join(problems))
    return client.ApiClient().deserialize(json.dumps(doc), name, "application/json")


# --- the real CLI ------------------------------------------------------------


def crid(*argv: str | Path) -> str:
    done = subprocess.run([str(CRID), *map(str, argv)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, f"crid {argv} exited {done.returncode}: {done.stderr}"
    return done.stdout


@cache
def crid_flags() -> frozenset[str]:
    """The long flags ``crid --help`` lists."""
    return frozenset(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", crid("--help")))


def effective_config(tmp: Path, config_file: Path | None) -> dict[str, Any]:
    """``crid config`` with only ``config_file`` (None: the built-in defaults)."""
    empty_dir = tmp / "empty.d"
    empty_dir.mkdir(exist_ok=True)
    if config_file is None:
        config_file = tmp / "empty.toml"
        config_file.write_text("")
    return tomllib.loads(crid("--config", config_file, "--config-dir", empty_dir, "config"))


def flags_in(argv: list[str]) -> list[str]:
    return [arg.split("=", 1)[0] for arg in argv if arg.startswith("-")]


# --- Kubernetes objects ------------------------------------------------------


def test_every_yaml_file_parses_and_is_a_kubernetes_object_or_a_known_other_file() -> None:
    found = {str(p.relative_to(MANIFESTS)) for p in yaml_files()}
    assert {"runtimeclass.yaml", "daemonset.yaml"} <= found
    assert found >= NOT_KUBERNETES, "a listed non-Kubernetes file is gone: update NOT_KUBERNETES"
    for path in yaml_files():
        docs = documents(path)
        assert docs, f"{path} has no document"
        for doc in docs:
            is_object = isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc
            expected = str(path.relative_to(MANIFESTS)) not in NOT_KUBERNETES
            assert is_object == expected, f"{path}: apiVersion and kind expected: {expected}"


@pytest.mark.parametrize("doc", kubernetes_documents())
def test_every_object_has_only_fields_its_model_knows(doc: dict[str, Any]) -> None:
    name = model_name(doc["apiVersion"], doc["kind"])
    assert unknown_fields(doc, name) == []
    built = build(doc)
    assert type(built).__name__ == name and built.kind == doc["kind"]
    assert built.metadata is not None and built.metadata.name
    # What the client built serializes back to the file's document: nothing was dropped.
    assert client.ApiClient().sanitize_for_serialization(built) == doc


@pytest.mark.parametrize(("api_version", "kind", "model"), [
    ("apps/v1", "DaemonSet", "V1DaemonSet"),
    ("node.k8s.io/v1", "RuntimeClass", "V1RuntimeClass"),
    ("v1", "ConfigMap", "V1ConfigMap"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", "V1ClusterRole"),
])
def test_kinds_map_to_the_clients_models(api_version: str, kind: str, model: str) -> None:
    assert model_name(api_version, kind) == model


def test_a_kind_the_client_lacks_is_an_error() -> None:
    with pytest.raises(ValueError, match="no model V1RuntimeKlass"):
        model_name("node.k8s.io/v1", "RuntimeKlass")


TYPO_DAEMONSET = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: crid, namespace: kube-system}
spec:
  selector: {matchLabels: {app: crid}}
  template:
    metadata: {labels: {app: crid}}
    spec:
      hostPID: "yes"
      containers:
        - name: crid
          image: crid:latest
          securityContext: {privilegd: true}
          volumeMounts: [{name: run, mountPath: /run/crid, mountPropogation: Bidirectional}]
      volumes: [{name: run, hostPath: {path: /run/crid}}]
"""


def test_the_strict_walker_rejects_a_typo_the_client_would_drop() -> None:
    [doc] = yaml.safe_load_all(TYPO_DAEMONSET)
    pod = "spec.template.spec"
    assert unknown_fields(doc, "V1DaemonSet") == [
        f"{pod}.hostPID: expected bool, got 'yes'",
        f"{pod}.containers[0].securityContext.privilegd: unknown field of V1SecurityContext",
        f"{pod}.containers[0].volumeMounts[0].mountPropogation: unknown field of V1VolumeMount",
    ]
    with pytest.raises(ValueError, match="privilegd: unknown field"):
        build(doc)
    # Why the walker: the client alone takes the misspelt keys and drops them.
    doc["spec"]["template"]["spec"]["hostPID"] = True
    lenient = client.ApiClient().deserialize(json.dumps(doc), "V1DaemonSet", "application/json")
    assert lenient.spec.template.spec.containers[0].security_context.privileged is None
    # And at the top level, with the typo in the manifest's own RuntimeClass.
    [runtime_class, *_] = objects_of_kind("RuntimeClass")
    typo = {**copy.deepcopy(runtime_class), "handlr": runtime_class["handler"]}
    assert unknown_fields(typo, "V1RuntimeClass") == ["handlr: unknown field of V1RuntimeClass"]


@pytest.mark.parametrize("doc", [d for d in kubernetes_documents()
                                 if d.values[0]["kind"] == "DaemonSet"])
def test_the_daemonset_passes_what_the_api_server_checks_beyond_the_schema(
        doc: dict[str, Any]) -> None:
    spec, template = doc["spec"], doc["spec"]["template"]
    labels = template["metadata"].get("labels", {})
    assert spec["selector"]["matchLabels"].items() <= labels.items(), "selector must match"
    pod = template["spec"]
    volumes = {v["name"] for v in pod.get("volumes", [])}
    for container in pod["containers"]:
        for mount in container.get("volumeMounts", []):
            assert mount["name"] in volumes, f"{container['name']}: no volume {mount['name']}"
            if mount.get("mountPropagation") == "Bidirectional":
                # The API server refuses Bidirectional in an unprivileged container.
                assert container.get("securityContext", {}).get("privileged") is True
        if container["name"] == "crid":
            unknown = set(flags_in([*container.get("command", [])[1:],
                                    *container.get("args", [])])) - crid_flags()
            assert unknown == set(), "flags `crid --help` does not list"


# --- RuntimeClasses and the daemon's config ------------------------------------


def test_every_runtime_class_names_a_handler_the_default_configs_have(tmp_path: Path) -> None:
    classes = objects_of_kind("RuntimeClass")
    handlers = {rc["handler"] for rc in classes}
    assert handlers, "manifests/ has no RuntimeClass"
    for rc in classes:
        assert DNS_LABEL.fullmatch(rc["metadata"]["name"]) and DNS_LABEL.fullmatch(rc["handler"])
    # "runc when installed": make setup installs it, so both built-ins are there.
    assert shutil.which("runc"), "runc is not installed: run `make setup`"
    for source in (MANIFESTS / "crid.toml", None):
        configured = set(effective_config(tmp_path, source)["crid"]["runtime"]["handlers"])
        assert handlers - configured == set(), f"RuntimeClass handlers missing from {source}"
        # runtimeclass.yaml promises one RuntimeClass per handler.
        assert configured - handlers == set(), f"handlers of {source} without a RuntimeClass"


def test_crid_toml_is_every_key_with_its_default(tmp_path: Path) -> None:
    shipped = tomllib.loads((MANIFESTS / "crid.toml").read_text())
    for setting in SETTINGS:
        tree = shipped
        for part in setting.key.split("."):
            assert part in tree, f"manifests/crid.toml lacks {setting.key}"
            tree = tree[part]
    assert effective_config(tmp_path, MANIFESTS / "crid.toml") == effective_config(tmp_path, None)


# --- the systemd unit --------------------------------------------------------


def unit_entries(path: Path) -> dict[str, dict[str, list[str]]]:
    """section -> key -> values (a key may repeat), with continuation lines joined."""
    entries: dict[str, dict[str, list[str]]] = {}
    section = ""
    text = re.sub(r"\\\n", " ", path.read_text())
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            entries.setdefault(section, {})
        else:
            key, _, value = line.partition("=")
            entries[section].setdefault(key.strip(), []).append(value.strip())
    return entries


def exec_argv(value: str) -> list[str]:
    # systemd's prefixes: - (ignore failure), @ (argv0), +, !, !! (privileges), : (no env).
    return shlex.split(value.lstrip("-@+!:"))


def test_the_unit_starts_crid_with_flags_it_has() -> None:
    service = unit_entries(MANIFESTS / "crid.service")["Service"]
    [exec_start] = service["ExecStart"]
    argv = exec_argv(exec_start)
    assert Path(argv[0]).name == "crid"
    flags = flags_in(argv[1:])
    assert flags and set(flags) - crid_flags() == set(), "flags `crid --help` does not list"
    assert str(DEFAULT_CONFIG_FILE) in argv
    assert Config().listen in (MANIFESTS / "crid.service").read_text()  # kubelet's endpoint


def test_the_unit_does_not_stop_crid_for_good_on_reload() -> None:
    # crid has no reload: SIGTERM or SIGINT drain it and it exits 0, which
    # Restart=on-failure would leave stopped; the node would lose its runtime.
    service = unit_entries(MANIFESTS / "crid.service")["Service"]
    for reload in service.get("ExecReload", []):
        argv = exec_argv(reload)
        sent = {argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "-s"}
        sent |= {a[1:] for a in argv[1:] if a.startswith("-") and a != "-s"}
        stops = sent & STOP_SIGNALS if Path(argv[0]).name == "kill" else set()
        assert not stops or service.get("Restart") == ["always"], f"ExecReload={reload}"


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify needs the ExecStart binary to exist: point it at this checkout's crid.
    unit = tmp_path / "crid.service"
    text = (MANIFESTS / "crid.service").read_text()
    [exec_start] = unit_entries(MANIFESTS / "crid.service")["Service"]["ExecStart"]
    unit.write_text(text.replace(exec_argv(exec_start)[0], str(CRID)))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                          timeout=60, check=False)
    # It only warns of an unknown key or section ("ignoring"): any output is a finding.
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


# --- crictl examples ---------------------------------------------------------


@pytest.mark.parametrize(("name", "message"), [
    ("pod.json", api_pb2.PodSandboxConfig),
    ("container.json", api_pb2.ContainerConfig),
])
def test_example_json_parses_as_its_cri_message(name: str, message: type[Any]) -> None:
    text = (MANIFESTS / "examples" / name).read_text()
    # ignore_unknown_fields=False: a field the CRI does not have is an error, as for crictl.
    parsed = json_format.Parse(text, message(), ignore_unknown_fields=False)
    assert parsed.metadata.name
    if message is api_pb2.ContainerConfig:
        assert parsed.image.image and parsed.command


def test_the_crictl_example_points_at_crids_socket() -> None:
    [config] = documents(MANIFESTS / "examples" / "crictl.yaml")
    assert set(config) <= CRICTL_KEYS, "keys crictl does not read"
    endpoint = f"unix://{Config().listen}"
    assert (config["runtime-endpoint"], config["image-endpoint"]) == (endpoint, endpoint)
