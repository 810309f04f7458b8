from __future__ import annotations

import pytest

from voiplog.calls import Disposition, judge


@pytest.mark.parametrize(
    ("status", "cancelled", "expected"),
    [
        (200, False, Disposition.ANSWERED),
        (202, False, Disposition.ANSWERED),
        (200, True, Disposition.ANSWERED),  # the answer crossed the CANCEL
        (486, False, Disposition.BUSY),
        (600, False, Disposition.BUSY),
        (487, False, Disposition.CANCELLED),
        (487, True, Disposition.CANCELLED),
        (None, True, Disposition.CANCELLED),
        (408, True, Disposition.CANCELLED),
        (408, False, Disposition.NO_ANSWER),
        (480, False, Disposition.NO_ANSWER),
        (401, False, Disposition.UNAUTHORIZED),
        (407, False, Disposition.UNAUTHORIZED),
        (300, False, Disposition.REDIRECTED),
        (302, False, Disposition.REDIRECTED),
        (399, False, Disposition.REDIRECTED),
        (400, False, Disposition.REJECTED),
        (404, False, Disposition.REJECTED),
        (488, False, Disposition.REJECTED),
        (603, False, Disposition.REJECTED),
        (606, False, Disposition.REJECTED),
        (500, False, Disposition.FAILED),
        (503, False, Disposition.FAILED),
        (None, False, Disposition.NO_FINAL_RESPONSE),
    ],
)
def test_contract_table(status, cancelled, expected):
    assert judge(status, cancelled) is expected


def test_every_final_status_has_a_disposition():
    for status in range(200, 700):
        assert isinstance(judge(status, False), Disposition)
