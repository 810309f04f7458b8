"""The lease interval index and lease files: boundaries, renewals, prefixes, time zones."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voiplog.enrich import LeaseIndex, Owner, SourceError, parse_time, read_lease_rows

T = parse_time("2024-05-01T10:00:00Z")
H = 3_600_000_000
ALICE = Owner("alice", "acct-1", "olt1/1/1:100")
BOB = Owner("bob", "acct-2", "olt1/1/2:100")


def _who(index, ip, at):
    lease = index.lookup(ip, at)
    return None if lease is None else lease.subscriber_id


def test_half_open_intervals_at_their_boundaries():
    index = LeaseIndex()
    index.add("100.64.0.1", T, T + H, ALICE)
    index.add("100.64.0.1", T + H, T + 2 * H, BOB)
    assert _who(index, "100.64.0.1", T - 1) is None
    assert _who(index, "100.64.0.1", T) == "alice"  # start is inside
    assert _who(index, "100.64.0.1", T + H - 1) == "alice"
    assert _who(index, "100.64.0.1", T + H) == "bob"  # end is outside: the next holder
    assert _who(index, "100.64.0.1", T + 2 * H - 1) == "bob"
    assert _who(index, "100.64.0.1", T + 2 * H) is None
    assert _who(index, "100.64.0.2", T) is None


def test_lease_carries_its_owner_interval_and_source():
    index = LeaseIndex()
    index.add("100.64.0.1", T, T + H, ALICE, "dhcp.csv")
    lease = index.lookup("100.64.0.1", T + 5)
    assert (lease.subscriber_id, lease.account, lease.access_line) == (
        "alice",
        "acct-1",
        "olt1/1/1:100",
    )
    assert lease.owner == ALICE
    assert (lease.start_us, lease.end_us, lease.source) == (T, T + H, "dhcp.csv")
    assert lease.network == "100.64.0.1"
    assert lease.to_dict()["start"] == "2024-05-01T10:00:00.000000Z"


def test_open_ended_lease():
    index = LeaseIndex()
    index.add("100.64.0.1", T, None, ALICE)
    lease = index.lookup("100.64.0.1", T + 1000 * H)
    assert lease.subscriber_id == "alice" and lease.end_us is None


def test_renewals_of_one_owner_merge():
    index = LeaseIndex()
    index.add("100.64.0.1", T, T + H, ALICE)
    index.add("100.64.0.1", T + H, T + 2 * H, ALICE)  # touching
    index.add("100.64.0.1", T + H // 2, T + 3 * H, ALICE)  # overlapping
    index.compact()
    assert len(index) == 1
    lease = index.lookup("100.64.0.1", T + 2 * H)
    assert (lease.start_us, lease.end_us) == (T, T + 3 * H)


def test_overlapping_owners_later_start_takes_over():
    index = LeaseIndex()
    index.add("100.64.0.1", T, T + 10 * H, ALICE)
    index.add("100.64.0.1", T + 4 * H, T + 6 * H, BOB)
    index.compact()
    assert index.overlaps == 1
    assert _who(index, "100.64.0.1", T + 4 * H - 1) == "alice"
    assert _who(index, "100.64.0.1", T + 4 * H) == "bob"
    assert _who(index, "100.64.0.1", T + 5 * H) == "bob"


def test_same_start_two_owners_last_added_stands():
    index = LeaseIndex()
    index.add("100.64.0.1", T, T + H, ALICE)
    index.add("100.64.0.1", T, T + H, BOB)
    assert _who(index, "100.64.0.1", T) == "bob"  # still pending
    index.compact()
    assert _who(index, "100.64.0.1", T) == "bob"  # merged
    assert index.overlaps == 1


def test_ipv6_prefixes_longest_match():
    index = LeaseIndex()
    index.add("2001:db8:1200::/56", T, T + H, ALICE)
    index.add("2001:db8:1200:5::/64", T, T + H, BOB)
    index.add("2001:db8:1200:6::1", T, T + H, Owner("carol"))
    assert _who(index, "2001:db8:1200:ff::1", T) == "alice"
    assert _who(index, "2001:db8:1200:5::abcd", T) == "bob"
    assert _who(index, "2001:db8:1200:6::1", T) == "carol"
    assert _who(index, "2001:db8:1200:6::2", T) == "alice"
    assert _who(index, "2001:db8:1201::1", T) is None
    lease = index.lookup("2001:db8:1200:ff::1", T)
    assert lease.network == "2001:db8:1200::/56"


def test_longest_match_falls_back_when_the_longer_lease_is_not_valid_then():
    index = LeaseIndex()
    index.add("2001:db8:1200::/56", T, T + 10 * H, ALICE)
    index.add("2001:db8:1200:5::/64", T + H, T + 2 * H, BOB)
    assert _who(index, "2001:db8:1200:5::1", T) == "alice"
    assert _who(index, "2001:db8:1200:5::1", T + H) == "bob"
    assert _who(index, "2001:db8:1200:5::1", T + 3 * H) == "alice"


def test_ipv4_prefix_lease():
    index = LeaseIndex()
    index.add("198.51.100.8/29", T, T + H, ALICE)
    assert _who(index, "198.51.100.15", T) == "alice"
    assert _who(index, "198.51.100.16", T) is None


def test_pending_leases_are_found_before_and_after_compaction():
    index = LeaseIndex()
    index.add("100.64.0.1", T, T + H, ALICE)
    index.compact()
    index.add("100.64.0.2", T, T + H, BOB)  # pending
    assert _who(index, "100.64.0.2", T) == "bob"
    assert _who(index, "100.64.0.1", T) == "alice"


def test_bad_input():
    index = LeaseIndex()
    with pytest.raises(ValueError):
        index.add("100.64.0.1", T, T, ALICE)
    with pytest.raises(ValueError):
        index.add("100.64.0.1/24", T, T + H, ALICE)  # host bits set
    with pytest.raises(ValueError):
        index.lookup("not an address", T)


def test_owner_fields_holding_the_separator_survive():
    index = LeaseIndex()
    index.add("100.64.0.1", T, T + H, Owner("a\x1fb", None, ""))
    lease = index.lookup("100.64.0.1", T)
    assert lease.subscriber_id == "a b" and lease.account is None and lease.access_line is None


# A naive model: every lease of a network, merged and cut the way the index documents.
@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["100.64.0.1", "100.64.0.2", "2001:db8::/56", "2001:db8:0:1::/64"]),
            st.integers(0, 40),
            st.integers(1, 15),
            st.sampled_from(["alice", "bob"]),
        ),
        max_size=25,
    ),
    st.lists(st.integers(-2, 60), min_size=1, max_size=20),
)
def test_index_agrees_with_a_model_of_disjoint_leases(leases, times):
    index = LeaseIndex()
    # Add per network in start order, so that "later start takes over" is unambiguous.
    leases = sorted(leases, key=lambda x: (x[0], x[1]))
    model: dict[str, list[list]] = {}
    for net, start, length, who in leases:
        index.add(net, start, start + length, Owner(who))
        runs = model.setdefault(net, [])
        if runs and start <= runs[-1][1] and runs[-1][2] == who:
            runs[-1][1] = max(runs[-1][1], start + length)
            continue
        if runs and start < runs[-1][1]:
            if start == runs[-1][0]:
                runs.pop()
            else:
                runs[-1][1] = start
        runs.append([start, start + length, who])

    def model_lookup(ip, at):
        address = ipaddress.ip_address(ip)
        best = None
        for net, runs in model.items():
            network = ipaddress.ip_network(net)
            if address.version != network.version or address not in network:
                continue
            for start, end, who in runs:
                if start <= at < end and (best is None or network.prefixlen > best[0]):
                    best = (network.prefixlen, who)
        return None if best is None else best[1]

    index.compact()
    for at in times:
        for ip in ("100.64.0.1", "100.64.0.2", "2001:db8::5", "2001:db8:0:1::5"):
            assert _who(index, ip, at) == model_lookup(ip, at), (ip, at)


@settings(max_examples=80, deadline=None)
@given(
    # Clustered and scattered addresses: buckets holding none, one or many networks.
    st.sets(
        st.one_of(st.integers(0x0A000000, 0x0A00003F), st.integers(0, 2**32 - 1)),
        min_size=1,
        max_size=120,
    ),
    st.lists(st.integers(0, 2**32 - 1), max_size=30),
)
def test_every_network_is_found_whatever_the_spread_of_addresses(held, probes):
    index = LeaseIndex()
    index.load(((4, 32, value), T, T + H, Owner(f"s{value}")) for value in held)
    for value in [*held, *probes, *(v + 1 for v in held if v < 2**32 - 1)]:
        ip = str(ipaddress.IPv4Address(value))
        assert _who(index, ip, T) == (f"s{value}" if value in held else None), ip


# -- lease files ---------------------------------------------------------------


def test_csv_rows_with_time_zones_normalised_to_utc():
    lines = [
        "network,subscriber_id,account,access_line,start,end\n",
        "100.64.0.1,alice,acct-1,olt1/1/1:100,2024-05-01T12:00:00+02:00,2024-05-01T11:00:00Z\n",
        "2001:db8:1200::/56,bob,,,2024-05-01T05:00:00-05:00,\n",
    ]
    first, second = read_lease_rows(lines, "leases.csv")
    assert first.start_us == T and first.end_us == T + H
    assert first.owner == ALICE and first.line == 2 and first.source == "leases.csv"
    assert second.start_us == T and second.end_us is None
    assert second.owner == Owner("bob", None, None)
    assert second.network_text == "2001:db8:1200::/56"


def test_jsonl_rows_keep_extra_keys_as_attributes():
    lines = [
        '{"ip": "100.64.0.1", "subscriber_id": "alice", "start": "2024-05-01T10:00:00Z",'
        ' "end": null, "mac": "02:00:00:00:00:01"}\n',
        "\n",
    ]
    (row,) = read_lease_rows(lines, "leases.jsonl", "jsonl")
    assert row.end_us is None and row.attributes == {"mac": "02:00:00:00:00:01"}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("100.64.0.1,alice,,,2024-05-01T10:00:00,", "start: '2024-05-01T10:00:00' has no UTC offset"),
        ("100.64.0.1,alice,,,2024-05-01T10:00:00Z,2024-05-01 11:00", "end: '2024-05-01 11:00' has no UTC offset"),
        ("100.64.0.1,alice,,,yesterday,", "start: 'yesterday' is not an ISO 8601 time"),
        ("100.64.0.300,alice,,,2024-05-01T10:00:00Z,", "network:"),
        ("100.64.0.1,,,,2024-05-01T10:00:00Z,", "subscriber_id: empty"),
        ("100.64.0.1,alice,,,2024-05-01T10:00:00Z,2024-05-01T10:00:00Z", "end is not after start"),
        ("100.64.0.1,alice", "2 fields where the header has 6"),
    ],
)  # fmt: skip
def test_csv_errors_name_file_and_line(line, reason):
    lines = ["network,subscriber_id,account,access_line,start,end\n", "# comment\n", line + "\n"]
    with pytest.raises(SourceError) as info:
        list(read_lease_rows(lines, "dhcp.csv"))
    assert str(info.value).startswith(f"dhcp.csv:3: {reason}")


def test_csv_header_and_jsonl_errors():
    with pytest.raises(SourceError, match=r"^a\.csv:1: header lacks start"):
        list(read_lease_rows(["network,subscriber_id\n"], "a.csv"))
    with pytest.raises(SourceError, match=r"^a\.csv:1: empty file"):
        list(read_lease_rows([], "a.csv"))
    with pytest.raises(SourceError, match=r"^b\.jsonl:2: not JSON"):
        good = '{"network": "100.64.0.1", "subscriber_id": "a", "start": "2024-05-01T10:00:00Z"}'
        list(read_lease_rows([good, "{\n"], "b.jsonl", "jsonl"))
    with pytest.raises(SourceError, match=r"^b\.jsonl:1: no 'subscriber_id'"):
        list(
            read_lease_rows(
                ['{"network": "100.64.0.1", "start": "2024-05-01T10:00:00Z"}'], "b.jsonl", "jsonl"
            )
        )
    with pytest.raises(SourceError, match=r"^b\.jsonl:1: start: '2024-05-01T10:00:00' has no UTC"):
        list(read_lease_rows(['{"network": "100.64.0.1", "subscriber_id": "a", "start": "2024-05-01T10:00:00"}'], "b.jsonl", "jsonl"))  # fmt: skip


def test_load_file_rows_into_index():
    lines = [
        "ip,subscriber,start,end\n",
        "100.64.0.1,alice,2024-05-01T10:00:00Z,2024-05-01T11:00:00Z\n",
        "100.64.0.1,alice,2024-05-01T11:00:00Z,2024-05-01T12:00:00Z\n",  # renewal
        "100.64.0.1,bob,2024-05-01T12:00:00Z,\n",
    ]
    index = LeaseIndex()
    assert index.load(read_lease_rows(lines, "x.csv")) == 3
    assert len(index) == 2
    assert _who(index, "100.64.0.1", T + 2 * H - 1) == "alice"
    assert _who(index, "100.64.0.1", T + 2 * H) == "bob"
