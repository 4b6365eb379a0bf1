from __future__ import annotations

import pytest
from crid.network.cni import args

from crid.errors import InvalidArgument


def pod(**fields: object) -> args.PodNetwork:
    return args.PodNetwork(id="abc", name="web", namespace="prod", uid="u-1",
                           netns="/run/x/net", **fields)  # type: ignore[arg-type]


def test_cni_args_name_the_pod() -> None:
    assert pod().cni_args() == ("IgnoreUnknown=1;K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web;"
                                "K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u-1")


def test_capability_args() -> None:
    found = pod(
        port_mappings=[args.port_mapping("TCP", 80, 8080, "127.0.0.1"),
                       args.port_mapping("UDP", 53, 0, "")],  # no host port: not mapped
        annotations={args.INGRESS_ANNOTATION: "10M", args.EGRESS_ANNOTATION: "1Gi"},
        dns={"servers": ["10.0.0.10"], "searches": [], "options": ["ndots:5"]},
    ).capability_args()
    assert found["portMappings"] == [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"}]
    assert found["bandwidth"] == {"ingressRate": 10_000_000, "ingressBurst": args.UNLIMITED_BURST,
                                  "egressRate": 2**30, "egressBurst": args.UNLIMITED_BURST}
    assert found["dns"] == {"servers": ["10.0.0.10"], "options": ["ndots:5"]}
    assert pod().capability_args() == {}


@pytest.mark.parametrize(("text", "bits"), [
    ("100", 100), ("1k", 1000), ("2.5M", 2_500_000), ("1Ki", 1024), ("3G", 3 * 10**9),
])
def test_quantities(text: str, bits: int) -> None:
    assert args.quantity_bits(text) == bits


def test_bad_quantity() -> None:
    with pytest.raises(InvalidArgument, match="10 Mbit"):
        args.quantity_bits("10 Mbit")


def test_runtime_config_only_for_declared_capabilities() -> None:
    capability_args = {"portMappings": [1], "bandwidth": {"ingressRate": 1}}
    assert args.runtime_config({"type": "bridge"}, capability_args) == {}
    assert args.runtime_config({"type": "portmap", "capabilities": {"portMappings": True}},
                               capability_args) == {"portMappings": [1]}
