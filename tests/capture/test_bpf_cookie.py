"""The kernel filter and the flow classifier agree on what STUN looks like."""

from voiplog.capture.bpf import STUN_MAGIC_COOKIE
from voiplog.flows._stun import MAGIC_COOKIE


def test_the_filter_and_the_classifier_use_the_same_stun_cookie():
    assert STUN_MAGIC_COOKIE == MAGIC_COOKIE == 0x2112A442
