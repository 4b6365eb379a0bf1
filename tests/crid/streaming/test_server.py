"""Protocol negotiation for the upgrade."""

from __future__ import annotations

from crid.streaming.server import negotiate

SUPPORTED = ("v4.channel.k8s.io", "v3.channel.k8s.io", "channel.k8s.io")


def test_the_clients_first_supported_choice_wins() -> None:
    assert negotiate(["v5.channel.k8s.io", "v3.channel.k8s.io", "v4.channel.k8s.io"],
                     SUPPORTED) == "v3.channel.k8s.io"


def test_comma_separated_offers_count_like_repeated_headers() -> None:
    assert negotiate(["v9.x, channel.k8s.io"], SUPPORTED) == "channel.k8s.io"


def test_no_offer_is_empty_and_no_match_is_none() -> None:
    assert negotiate([], SUPPORTED) == ""
    assert negotiate(["v9.x"], SUPPORTED) is None
