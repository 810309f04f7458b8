"""The command pins glibc's mmap threshold, so that large freed buffers go back to the system."""

from __future__ import annotations

import platform

import pytest

from voiplog._allocator import pin_mmap_threshold


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_threshold_is_pinned_on_glibc():
    assert pin_mmap_threshold() is True
