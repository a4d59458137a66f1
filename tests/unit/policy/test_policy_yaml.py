"""YAML policy files: the documented example, every malformed case, rendering."""

from __future__ import annotations

import re

import pytest
import yaml

from shardkey.errors import UsageError
from shardkey.policy import (
    ApprovalGroup,
    Circle,
    Policy,
    PolicyFile,
    PolicyFileError,
    Polygon,
    parse_policy_yaml,
    policy_to_yaml_dict,
)

ACCOUNTS = {
    "requester": "0x" + "11" * 20,
    "attestor": "0x" + "22" * 20,
    "client-rep": "0x" + "33" * 20,
    "provider-rep": "0x" + "44" * 20,
}
NAMES = {v: k for k, v in ACCOUNTS.items()}


def resolve(name: str) -> str:
    return ACCOUNTS[name]


EXAMPLE = """\
requesters: [requester]               # names or 0x addresses; omitted = anyone
time:                                 # all optional
  not_before: 2026-01-01T00:00:00Z
  not_after: 2027-01-01T00:00:00Z
  daily: "08:00-18:00"                # UTC, end exclusive; "22:00-06:00" wraps
  weekdays: [mon, tue, wed, thu, fri]
geo:                                  # optional
  attestors: [attestor]
  max_age: 600                        # seconds
  max_accuracy_m: 500                 # required with a polygon region
  regions:
    - {lat: 48.8566, lon: 2.3522, radius_km: 50}
    - {polygon: [[52.52, 13.40], [52.50, 13.45], [52.48, 13.38]]}
approvals:                            # optional
  - {group: client, members: [client-rep], required: 1}
  - {group: provider, members: [provider-rep], required: 1}
approval_window: 3600                 # optional, seconds, default 3600
threshold: 3                          # optional here; the fragment threshold t
"""

EXPECTED = Policy(
    requesters=(ACCOUNTS["requester"],),
    not_before=1_767_225_600,
    not_after=1_798_761_600,
    daily_start_minute=480,
    daily_end_minute=1080,
    weekday_mask=0b0011111,
    attestors=(ACCOUNTS["attestor"],),
    max_attestation_age=600,
    max_accuracy_m=500,
    circles=(Circle(48_856_600, 2_352_200, 50_000),),
    polygons=(Polygon((52_520_000, 52_500_000, 52_480_000), (13_400_000, 13_450_000, 13_380_000)),),
    groups=(
        ApprovalGroup("client", (ACCOUNTS["client-rep"],), 1),
        ApprovalGroup("provider", (ACCOUNTS["provider-rep"],), 1),
    ),
    approval_window=3600,
)


def test_example_parses() -> None:
    assert parse_policy_yaml(EXAMPLE, resolve) == PolicyFile(EXPECTED, 3)


def test_minimal_and_defaults() -> None:
    assert parse_policy_yaml("{}", resolve) == PolicyFile(Policy(), None)
    parsed = parse_policy_yaml("approval_window: 60\n", resolve)
    assert parsed.policy.approval_window == 60 and parsed.policy.requesters == ()


def test_addresses_accepted_directly_without_resolver() -> None:
    def no_resolver(name: str) -> str:
        raise AssertionError(name)

    addr = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    other = "0x" + "00" * 19 + "01"
    parsed = parse_policy_yaml(f"requesters: [{addr.lower()}, {other}]", no_resolver)
    assert parsed.policy.requesters == (addr, other)
    parsed = parse_policy_yaml(f"requesters: ['{addr}']", no_resolver)
    assert parsed.policy.requesters == (addr,)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("time: {daily: '22:00-06:00'}", (1320, 360)),
        ("time: {daily: '00:00-24:00'}", (0, 0)),
        ("time: {daily: '18:00-24:00'}", (1080, 0)),
        ("time: {daily: '23:59-00:00'}", (1439, 0)),
    ],
)
def test_daily_forms(text: str, expected: tuple[int, int]) -> None:
    p = parse_policy_yaml(text, resolve).policy
    assert (p.daily_start_minute, p.daily_end_minute) == expected


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-01T01:00:00+01:00",
        "'2026-01-01T00:00:00Z'",
        "'2026-01-01T00:00:00+00:00'",
        "1767225600",
        "2026-01-01 00:00:00Z",
    ],
)
def test_timestamp_forms(value: str) -> None:
    p = parse_policy_yaml(f"time: {{not_before: {value}}}", resolve).policy
    assert p.not_before == 1_767_225_600


def test_weekday_full_names_and_case() -> None:
    p = parse_policy_yaml("time: {weekdays: [Saturday, SUN]}", resolve).policy
    assert p.weekday_mask == 0b1100000


GEO = "geo: {attestors: [attestor], max_age: 600, regions: [%s]}"
CIRCLE = "{lat: 1, lon: 2, radius_km: 3}"


def geo_doc(attestors: str, fields: str, extra: str) -> str:
    return f"geo: {{attestors: {attestors}, {fields}regions: [{CIRCLE}]{extra}}}"


MALFORMED: list[tuple[str, str]] = [
    ("- a\n- b", r"\(file\): must be a mapping"),
    ("? [a]\n: 1", r"\(file\): not valid YAML"),
    ("1: x", r"1: unknown key"),
    ("", r"\(file\): must be a mapping"),
    ("a: [", r"\(file\): not valid YAML"),
    ("requesterz: [requester]", r"requesterz: unknown key"),
    ("requesters: [requester]\nrequesters: [attestor]", r"requesters: duplicate key \(line 2\)"),
    ("requesters: requester", r"requesters: must be a list"),
    ("requesters: []", r"requesters: must list 1 to 64"),
    ("requesters: [nobody]", r"requesters\[0\]: unknown account 'nobody'"),
    ("requesters: [requester, requester]", r"requesters\[1\]: duplicate requester"),
    ("requesters: [0x1234]", r"requesters\[0\]: "),
    ("requesters: ['0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD']", r"requesters\[0\]: bad EIP-55"),
    ("requesters: [0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD]", r"requesters\[0\]: bad EIP-55"),
    ("approval_window: 0x10", r"approval_window: must be an integer, not str"),
    ("requesters: [5]", r"requesters\[0\]: must be an account name"),
    ("time: {not_before: 2026-01-01T00:00:00}", r"time.not_before: .*time zone"),
    ("time: {not_before: '2026-01-01T00:00:00'}", r"time.not_before: .*time zone"),
    ("time: {not_before: 2026-01-01}", r"time.not_before: a date alone"),
    ("time: {not_before: 'tomorrow'}", r"time.not_before: not an ISO 8601"),
    ("time: {not_before: 1.5}", r"time.not_before: must be a timestamp"),
    ("time: {not_after: 1970-01-01T00:00:00Z}", r"time.not_after: must be after 1970"),
    (
        "time: {not_before: 2027-01-01T00:00:00Z, not_after: 2026-01-01T00:00:00Z}",
        r"time.not_after: must not be before time.not_before",
    ),
    ("time: {daily: '25:00-'}", r"time.daily: must look like"),
    ("time: {daily: '25:00-26:00'}", r"time.daily: must look like"),
    ("time: {daily: '08:60-09:00'}", r"time.daily: must look like"),
    ("time: {daily: '08:00-24:01'}", r"time.daily: must look like"),
    ("time: {daily: '8:00-9:00'}", r"time.daily: must look like"),
    ("time: {daily: 480}", r"time.daily: must look like"),
    ("time: {daily: '08:00-08:00'}", r"time.daily: start equals end"),
    ("time: {weekdays: [mon, funday]}", r"time.weekdays\[1\]: unknown weekday 'funday'"),
    ("time: {weekdays: [mon, monday]}", r"time.weekdays\[1\]: duplicate weekday"),
    ("time: {weekdays: []}", r"time.weekdays: must list 1 to 7"),
    ("time: {weekdays: mon}", r"time.weekdays: must be a list"),
    ("time: {hours: 1}", r"time.hours: unknown key"),
    ("time: 5", r"time: must be a mapping"),
    (GEO % "{lat: 91, lon: 0, radius_km: 1}", r"geo.regions\[0\].lat: must be between -90 and 90"),
    (GEO % "{lat: 0, lon: -180.5, radius_km: 1}", r"geo.regions\[0\].lon: must be between"),
    (GEO % "{lat: '1', lon: 0, radius_km: 1}", r"geo.regions\[0\].lat: must be a number"),
    (GEO % "{lat: .nan, lon: 0, radius_km: 1}", r"geo.regions\[0\].lat: must be a finite"),
    (GEO % "{lat: 0, lon: 0, radius_km: 0}", r"geo.regions\[0\].radius_km: must be > 0"),
    (GEO % "{lat: 0, lon: 0, radius_km: -2}", r"geo.regions\[0\].radius_km: must be > 0"),
    (GEO % "{lat: 0, lon: 0, radius_km: 0.0004}", r"geo.regions\[0\].radius_km: must be between"),
    (GEO % "{lat: 0, lon: 0, radius_km: 5000000}", r"geo.regions\[0\].radius_km: must be between"),
    (GEO % "{lat: 0, lon: 0}", r"geo.regions\[0\].radius_km: required"),
    (GEO % "{lat: 0, lon: 0, radius_km: 1, name: x}", r"geo.regions\[0\].name: unknown key"),
    (GEO % (CIRCLE + ", {polygon: [[0, 0], [1, 1]]}"), r"geo.regions\[1\].polygon: must list 3"),
    (GEO % "{polygon: [[0, 0], [1, 1], [2]]}", r"geo.regions\[0\].polygon\[2\]: must be a \[lat"),
    (GEO % "{polygon: [[0, 0], [1, 1], [2, 200]]}", r"geo.regions\[0\].polygon\[2\]\[1\]: "),
    (GEO % "{polygon: [[0, 0], [1, 1], [2, 2]], lat: 1}", r"geo.regions\[0\].lat: unknown key"),
    (GEO % "", r"geo.regions: must list 1 to 16"),
    (GEO % ", ".join([CIRCLE] * 17), r"geo.regions: must list 1 to 16"),
    (geo_doc("[attestor]", "", ""), r"geo.max_age: required"),
    (geo_doc("[attestor]", "max_age: 0, ", ""), r"geo.max_age: must be between 1"),
    (geo_doc("[]", "max_age: 1, ", ""), r"geo.attestors: must list 1"),
    (geo_doc("[x]", "max_age: 1, ", ""), r"geo.attestors\[0\]: unknown"),
    (
        geo_doc("[attestor]", "max_age: 1, max_accuracy_m: 0, ", ""),
        r"geo.max_accuracy_m: must be between 1",
    ),
    (
        geo_doc("[attestor]", "max_age: true, ", ""),
        r"geo.max_age: must be an integer",
    ),
    ("approvals: []", r"approvals: must list 1 to 8"),
    (
        "approvals: [{group: a, members: [client-rep], required: 1}, "
        "{group: b, members: [provider-rep], required: 0}]",
        r"approvals\[1\].required: must be between 1 and 1 \(members\)$",
    ),
    (
        "approvals: [{group: a, members: [client-rep, provider-rep], required: 3}]",
        r"approvals\[0\].required: must be between 1 and 2 \(members\)$",
    ),
    ("approvals: [{group: a, members: [], required: 1}]", r"approvals\[0\].members: must list 1"),
    (
        "approvals: [{group: a, members: [client-rep, client-rep], required: 1}]",
        r"approvals\[0\].members\[1\]: duplicate member 'client-rep'",
    ),
    (
        "approvals: [{group: a, members: [client-rep, '0x3333333333333333333333333333333333333333'],"
        " required: 1}]",
        r"approvals\[0\].members\[1\]: duplicate member",
    ),
    (
        "approvals: [{group: '', members: [client-rep], required: 1}]",
        r"approvals\[0\].group: must be a non-empty string",
    ),
    (
        "approvals: [{group: a, members: [client-rep], required: 1}, "
        "{group: a, members: [provider-rep], required: 1}]",
        r"approvals\[1\].group: duplicate group",
    ),
    ("approvals: [{group: a, members: [client-rep]}]", r"approvals\[0\].required: required"),
    (
        "approvals: [{group: a, members: [client-rep], required: 1, quorum: 2}]",
        r"approvals\[0\].quorum: unknown key",
    ),
    (
        "approvals: [{group: a, members: [client-rep], required: '1'}]",
        r"approvals\[0\].required: must be an integer",
    ),
    ("approval_window: 0", r"approval_window: must be between 1"),
    ("approval_window: 1.5", r"approval_window: must be an integer"),
    ("threshold: 0", r"threshold: must be between 1 and 255"),
    ("threshold: 256", r"threshold: must be between 1 and 255"),
    (geo_doc("[attestor]", "max_age: 1, ", ", extra: 1"), r"geo.extra: unknown key"),
    (GEO % "{polygon: [[0, 0], [1, 1], [2, 0]]}",
     r"geo.max_accuracy_m: must be > 0 when a region is a polygon"),
    (
        "approvals: [{group: a, members: [client-rep], required: 1}, "
        "{group: b, members: [provider-rep, client-rep], required: 1}]",
        r"approvals\[1\]\.members: 0x[0-9a-fA-F]{40} is already a member of group 'a'",
    ),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED)
def test_malformed_files_name_the_key(text: str, message: str) -> None:
    with pytest.raises(PolicyFileError) as info:
        parse_policy_yaml(text, resolve)
    assert re.search(f"^{message}", str(info.value)), str(info.value)
    assert isinstance(info.value, UsageError) and info.value.exit_code == 2


def test_resolver_errors_are_wrapped() -> None:
    def bad(name: str) -> str:
        return "not-an-address"

    with pytest.raises(PolicyFileError, match=r"^requesters\[0\]: not an address"):
        parse_policy_yaml("requesters: [alice]", bad)


def test_policy_to_yaml_dict_renders_names_and_degrees() -> None:
    rendered = policy_to_yaml_dict(EXPECTED, NAMES.get, threshold=3)
    assert rendered == yaml.safe_load(EXAMPLE) | {
        "time": {
            "not_before": "2026-01-01T00:00:00Z",
            "not_after": "2027-01-01T00:00:00Z",
            "daily": "08:00-18:00",
            "weekdays": ["mon", "tue", "wed", "thu", "fri"],
        }
    }
    unknown = policy_to_yaml_dict(EXPECTED, lambda _: None)
    assert unknown["requesters"] == [ACCOUNTS["requester"]] and "threshold" not in unknown
    assert policy_to_yaml_dict(Policy(), NAMES.get) == {"approval_window": 3600}


def test_rendered_yaml_parses_back() -> None:
    text = yaml.safe_dump(policy_to_yaml_dict(EXPECTED, NAMES.get, threshold=3))
    assert parse_policy_yaml(text, resolve) == PolicyFile(EXPECTED, 3)
