from __future__ import annotations

from crid.network import podfiles


def test_resolv_conf_from_dns_config() -> None:
    text = podfiles.resolv_conf(["10.0.0.10"], ["a.local", "b.local"], ["ndots:5"], "host\n")
    assert text == "nameserver 10.0.0.10\nsearch a.local b.local\noptions ndots:5\n"


def test_resolv_conf_falls_back_to_the_host() -> None:
    assert podfiles.resolv_conf([], [], [], "nameserver 1.2.3.4\n") == "nameserver 1.2.3.4\n"


def test_hosts_names_the_pod_on_each_ip() -> None:
    text = podfiles.hosts("web-0", ["10.88.0.5", "fd00::5"])
    assert "127.0.0.1\tlocalhost\n" in text
    assert "10.88.0.5\tweb-0\n" in text and "fd00::5\tweb-0\n" in text
    assert "web-0" not in podfiles.hosts("", ["10.88.0.5"])
