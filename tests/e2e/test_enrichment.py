"""End to end: RADIUS accounting and lease sources in a replay name the subscriber of a call."""

from __future__ import annotations

import json

from click.testing import CliRunner

from tests.mmdbcraft import write_mmdb
from tests.radiuscraft import SECRET, accounting
from tests.sipcraft import T0, make_dialog, make_registration, sorted_frames, udp_frame
from voiplog.cdr import format_ts
from voiplog.cli.main import cli

NAS = "192.0.2.1"
RADIUS_SERVER = "192.0.2.2"
S = 1_000_000

CONFIG = """
pop = "ams1"
[[subscriber_networks]]
cidr = "10.1.0.0/16"
site = "hall 1"
[enrichment]
radius_ports = [1813]
radius_session_timeout_s = 3600
{extra}
"""


def _radius(ts: int, payload: bytes) -> tuple[int, bytes]:
    return ts, udp_frame(NAS, 40000, RADIUS_SERVER, 1813, payload)


def test_radius_in_the_capture_names_the_subscriber(replayer, tmp_path):
    calls = []
    for n in (1, 2):
        d = make_dialog(n)  # both from 10.1.0.10
        d.basic_answered(T0 + (n - 1) * 20 * S, talk_s=2.0, rtp=False)
        calls.append(d)
    start_alice = accounting(
        "Start", "s1", User_Name="alice@isp", Framed_IP_Address="10.1.0.10",
        NAS_Port_Id="eth 1/1/1:100",
    )  # fmt: skip
    stop_alice = accounting("Stop", "s1", User_Name="alice@isp", Framed_IP_Address="10.1.0.10")
    start_bob = accounting(
        "Start",
        "s2",
        User_Name="bob@isp",
        Framed_IP_Address="10.1.0.10",
        NAS_Port_Id="eth 1/1/2:100",
    )
    # Alice's session ends in the middle of her call, then Bob gets the address.
    radius = [
        _radius(T0 - 10 * S, start_alice),
        _radius(T0 + 1_500_000, stop_alice),
        _radius(T0 + 2 * S, start_bob),
        _radius(T0 + 2 * S, b"\x04\x01\x00"),  # unreadable: counted, not fatal
    ]
    records = replayer.records(sorted_frames(*calls, extra=radius), config=CONFIG.format(extra=""))
    assert [r["call_id"] for r in records] == ["call-1@craft.example", "call-2@craft.example"]
    first, second = records
    assert first["subscriber"] == {
        "id": "alice@isp",
        "account": None,
        "access_line": "eth 1/1/1:100",
        "pop": "ams1",
        "location": {"site": "hall 1"},
    }
    assert second["subscriber"]["id"] == "bob@isp"
    assert second["subscriber"]["access_line"] == "eth 1/1/2:100"
    assert first["remote"] == {"country": None, "asn": None, "org": None}


def test_radius_in_the_capture_names_the_subscriber_of_a_registration(replayer):
    reg = make_registration(1, ua_ip="10.1.0.20")
    reg.register(T0, 1)
    reg.reply(T0 + 20_000, 200, 1, contacts=[reg.default_contact()], expires=3600)
    start = accounting(
        "Start", "s7", User_Name="dave@isp", Framed_IP_Address="10.1.0.20",
        NAS_Port_Id="eth 1/1/7:100",
    )  # fmt: skip
    radius = [_radius(T0 - 10 * S, start)]
    (record,) = replayer.records(sorted_frames(reg, extra=radius), config=CONFIG.format(extra=""))
    assert record["kind"] == "registration" and record["result"] == "registered"
    assert record["subscriber"] == {
        "id": "dave@isp",
        "account": None,
        "access_line": "eth 1/1/7:100",
        "pop": "ams1",
        "location": {"site": "hall 1"},
    }
    assert "remote" not in record


def test_untrusted_radius_source_is_ignored(replayer):
    d = make_dialog(1)
    d.basic_answered(T0, talk_s=1.0, rtp=False)
    forged = accounting("Start", "x", User_Name="mallory", Framed_IP_Address="10.1.0.10")
    config = CONFIG.format(
        extra=f'radius_clients = [{{address = "{NAS}", secret = "{SECRET.decode()}"}}]'
    )
    frames = sorted_frames(
        d, extra=[(T0 - S, udp_frame("10.1.0.99", 1, RADIUS_SERVER, 1813, forged))]
    )
    (record,) = replayer.records(frames, config=config)
    assert record["subscriber"]["id"] is None


def test_lease_files_cgnat_and_maxmind_from_the_config(replayer, tmp_path):
    leases = tmp_path / "leases.csv"
    leases.write_text(
        "network,subscriber_id,account,access_line,start,end\n"
        f"10.1.0.10,carol,acct-7,olt2/1/1:7,{format_ts(T0 - 3600 * S)},{format_ts(T0 + 3600 * S)}\n"
    )
    mmdb = write_mmdb(tmp_path / "geo.mmdb")
    extra = f'lease_files = ["{leases}"]\nmaxmind_databases = ["{mmdb}", "{tmp_path}/absent.mmdb"]'
    d = make_dialog(1)
    d.basic_answered(T0, talk_s=1.0, rtp=False)
    (record,) = replayer.records(sorted_frames(d), config=CONFIG.format(extra=extra))
    assert record["subscriber"]["id"] == "carol"
    assert record["subscriber"]["account"] == "acct-7"
    assert record["remote"] == {"country": "NL", "asn": 64500, "org": "Example Carrier B.V."}


def test_bad_lease_file_is_a_configuration_error_naming_file_and_line(replayer, tmp_path):
    leases = tmp_path / "leases.csv"
    leases.write_text("network,subscriber_id,start,end\n10.1.0.10,carol,2024-05-01T10:00:00,\n")
    config = tmp_path / "pop.toml"
    config.write_text(CONFIG.format(extra=f'lease_files = ["{leases}"]'))
    d = make_dialog(1)
    d.basic_answered(T0, talk_s=1.0, rtp=False)
    capture = replayer.write(sorted_frames(d))
    result = CliRunner().invoke(cli, ["replay", str(capture), "--config", str(config)])
    assert result.exit_code == 2
    assert f"{leases}:2: start: '2024-05-01T10:00:00' has no UTC offset" in result.output


def test_lookup_command(tmp_path):
    leases = tmp_path / "leases.jsonl"
    leases.write_text(
        json.dumps({"network": "100.64.0.1", "subscriber_id": "alice", "start": "2024-05-01T10:00:00Z",
                    "end": "2024-05-01T11:00:00Z"}) + "\n"
        + json.dumps({"network": "100.64.0.1", "subscriber_id": "bob", "start": "2024-05-01T11:00:00Z"})
        + "\n"
    )  # fmt: skip
    nat = tmp_path / "nat.csv"
    nat.write_text(
        "public_ip,port_start,port_end,private_ip,start,end\n"
        "203.0.113.7,1024,2047,100.64.0.1,2024-05-01T00:00:00Z,\n"
    )
    config = tmp_path / "pop.toml"
    config.write_text(
        'pop = "ams1"\n[[subscriber_networks]]\ncidr = "100.64.0.0/10"\nsite = "hall 1"\n'
        f'[enrichment]\nlease_files = ["{leases}"]\ncgnat_files = ["{nat}"]\n'
    )
    runner = CliRunner(env={"VOIPLOG_DATABASE_URL": None})

    def lookup(*args):
        result = runner.invoke(cli, ["lookup", *args, "--config", str(config)])
        return result.exit_code, (
            json.loads(result.stdout) if result.stdout.startswith("{") else result.output
        )

    code, out = lookup("--ip", "100.64.0.1", "--at", "2024-05-01T12:59:59.999999+02:00")
    assert code == 0 and out["lease"]["subscriber_id"] == "alice"
    assert out["subscriber"]["location"] == {"site": "hall 1"}
    code, out = lookup("--ip", "100.64.0.1", "--at", "2024-05-01T13:00:00+02:00")
    assert code == 0 and out["lease"]["subscriber_id"] == "bob"
    assert out["lease"]["end"] is None
    code, out = lookup("--ip", "203.0.113.7", "--port", "2047", "--at", "2024-05-01T10:30:00Z")
    assert (
        code == 0 and out["private_ip"] == "100.64.0.1" and out["lease"]["subscriber_id"] == "alice"
    )
    code, out = lookup("--ip", "203.0.113.7", "--port", "2048", "--at", "2024-05-01T10:30:00Z")
    assert code == 1 and out["lease"] is None and out["cgnat_block"] is None
    result = runner.invoke(
        cli,
        ["lookup", "--ip", "203.0.113.7", "--port", "2048", "--at", "2024-05-01T10:30:00Z",
         "--config", str(config)],
    )  # fmt: skip
    assert "no lease holds 203.0.113.7 at 2024-05-01T10:30:00Z" in result.stderr
    code, out = lookup("--ip", "100.64.0.1", "--at", "2024-05-01T10:30:00")
    assert code == 2 and "has no time zone" in out
    # A date means 00:00 UTC, as for every command that takes a moment.
    code, out = lookup("--ip", "100.64.0.1", "--at", "2024-05-02")
    assert code == 0 and out["lease"]["subscriber_id"] == "bob" and out["at"] == "2024-05-02"
    code, out = lookup("--ip", "100.64.0.1", "--at", "2024-05-01")  # 00:00, before alice's
    assert code == 1 and out["lease"] is None


def test_radius_session_without_stop_expires_in_the_replay(replayer):
    config = CONFIG.replace("radius_session_timeout_s = 3600", "radius_session_timeout_s = 60")
    start = accounting("Start", "s1", User_Name="alice@isp", Framed_IP_Address="10.1.0.10")
    early, late = make_dialog(1), make_dialog(2)
    early.basic_answered(T0 - 90 * S, talk_s=1.0, rtp=False)  # within the session's timeout
    late.basic_answered(T0, talk_s=1.0, rtp=False)  # after it: the Stop went missing
    frames = sorted_frames(early, late, extra=[_radius(T0 - 100 * S, start)])
    first, second = replayer.records(frames, config=config.format(extra=""))
    assert first["subscriber"]["id"] == "alice@isp"
    assert second["subscriber"]["id"] is None
