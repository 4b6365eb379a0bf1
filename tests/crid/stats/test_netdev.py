"""Parsing /proc/net/dev."""

from __future__ import annotations

from crid.stats.netdev import Interface, parse

PROC_NET_DEV = """\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     140       2    0    0    0     0          0         0      140       2    0    0    0     0       0          0
  eth0:   98765     120    4    7    0     0          0         0    43210      80    1    2    0     0       0          0
"""  # noqa: E501


def test_interfaces_without_loopback() -> None:
    assert parse(PROC_NET_DEV) == [Interface(
        "eth0", rx_bytes=98765, rx_errors=4, tx_bytes=43210, tx_errors=1,
        rx_packets=120, rx_dropped=7, tx_packets=80, tx_dropped=2)]


def test_short_lines_are_skipped() -> None:
    assert parse(PROC_NET_DEV.splitlines()[0] + "\nx\n  eth1: 1 2\n") == []
