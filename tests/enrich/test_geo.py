"""The far end: country, ASN and organisation from a MaxMind-format database."""

from __future__ import annotations

import maxminddb
import pytest

from tests.mmdbcraft import write_mmdb
from voiplog.enrich import RemoteLookup


@pytest.fixture
def reader(tmp_path):
    with maxminddb.open_database(str(write_mmdb(tmp_path / "test.mmdb"))) as db:
        yield db


def test_country_asn_and_org(reader):
    remote = RemoteLookup([reader])
    assert remote.lookup("192.0.2.50") == {
        "country": "NL",
        "asn": 64500,
        "org": "Example Carrier B.V.",
    }
    assert remote.lookup("2001:db8:ffff::1") == {
        "country": "FR",
        "asn": 64501,
        "org": "Exemple SAS",
    }


def test_registered_country_when_no_country(reader):
    assert RemoteLookup([reader]).lookup("198.51.100.1") == {
        "country": "DE",
        "asn": None,
        "org": None,
    }


def test_unknown_address_and_no_database_give_null_fields(reader):
    nulls = {"country": None, "asn": None, "org": None}
    assert RemoteLookup([reader]).lookup("203.0.113.1") == nulls
    assert RemoteLookup([reader]).lookup("not an address") == nulls
    assert RemoteLookup().lookup("192.0.2.50") == nulls
    assert not RemoteLookup()


def test_fields_come_from_the_first_database_knowing_them(tmp_path):
    country = write_mmdb(tmp_path / "c.mmdb", {"192.0.2.0/24": {"country": {"iso_code": "NL"}}})
    asn = write_mmdb(
        tmp_path / "a.mmdb",
        {
            "192.0.2.0/24": {
                "autonomous_system_number": 64500,
                "autonomous_system_organization": "X",
            }
        },
    )
    with maxminddb.open_database(str(country)) as c, maxminddb.open_database(str(asn)) as a:
        remote = RemoteLookup([c, a])
        assert remote.lookup("192.0.2.9") == {"country": "NL", "asn": 64500, "org": "X"}
        # Answers are cached, and a caller changing one does not change the next.
        remote.lookup("192.0.2.9")["country"] = "XX"
        assert remote.lookup("192.0.2.9")["country"] == "NL"
