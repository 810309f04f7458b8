"""Fixtures of the export tests: a real store with its officers, a signing key, a bundle."""

from __future__ import annotations

import pytest

from tests.export.test_export_cli import disclosed_request, make_keys, voiplog
from tests.store.conftest import scratch_dsn, store_dsn  # noqa: F401  (fixtures)
from tests.store.test_access_schema import people  # noqa: F401  (fixture)


@pytest.fixture
def keys(tmp_path) -> dict:
    return make_keys(tmp_path / "keys")


@pytest.fixture
def exported(people, store_dsn, tmp_path, keys):  # noqa: F811
    request_id = disclosed_request(
        people, store_dsn, tmp_path, "--number", "022 1234 5678", "--region", "IN",
        "--subscriber", "sub-app",
    )  # fmt: skip
    # count-only does not disclose: a request is exported once it has been run.
    refused = voiplog(people["requester"], "export", request_id, "--out", str(tmp_path / "early"), env=keys)  # fmt: skip
    assert refused.exit_code == 1 and "is approved: only a request that has been run" in refused.output  # fmt: skip
    assert voiplog(people["requester"], "request", "run", request_id).exit_code == 0
    out = tmp_path / "bundle"
    unsigned = voiplog(people["requester"], "export", request_id, "--out", str(out))
    assert unsigned.exit_code == 2 and "no signing key" in unsigned.output
    result = voiplog(people["requester"], "export", request_id, "--out", str(out), "--local-zone", "Asia/Kolkata", env=keys)  # fmt: skip
    assert result.exit_code == 0, result.output
    return request_id, out, result.output
