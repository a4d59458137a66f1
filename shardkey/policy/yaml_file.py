"""The user-facing YAML policy file: parsing (strict) and rendering for ``policy show``.

Shape (every section optional)::

    requesters: [requester]               # names or 0x addresses; omitted = anyone
    time: {not_before: 2026-01-01T00:00:00Z, not_after: ..., daily: "08:00-18:00",
           weekdays: [mon, tue]}
    geo: {attestors: [attestor], max_age: 600, max_accuracy_m: 500,   # required with a polygon
          regions: [{lat: 48.8566, lon: 2.3522, radius_km: 50},
                    {polygon: [[52.52, 13.40], [52.50, 13.45], [52.48, 13.38]]}]}
    approvals: [{group: client, members: [client-rep], required: 1}]   # a member in one group
    approval_window: 3600                 # seconds, default 3600
    threshold: 3                          # the fragment threshold t

Every error is a :class:`PolicyFileError` whose message starts with the key path
(``approvals[1].required: must be between 1 and 1 (members)``). Unknown and duplicate
keys are refused at every level.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from shardkey.errors import ShardKeyError
from shardkey.policy.errors import PolicyFileError, PolicyValueError
from shardkey.policy.geo import degrees_to_e6, e6_to_degrees
from shardkey.policy.model import (
    DEFAULT_APPROVAL_WINDOW,
    MAX_ATTESTORS,
    MAX_GROUP_MEMBERS,
    MAX_GROUPS,
    MAX_POLYGON_VERTICES,
    MAX_REGIONS,
    MAX_REQUESTERS,
    MIN_POLYGON_VERTICES,
    POLYGON_ACCURACY_PROBLEM,
    ApprovalGroup,
    Circle,
    Policy,
    Polygon,
    normalize_address,
    shared_members,
    two_groups_problem,
)
from shardkey.policy.window import WEEKDAY_NAMES, weekday_mask_from_names, weekday_names_from_mask

Resolver = Callable[[str], str]
"""Maps a devnet account name to a checksummed address (``0x`` addresses pass through)."""

UINT32_MAX = (1 << 32) - 1
MAX_THRESHOLD = 255
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAILY = re.compile(r"(\d\d):(\d\d)-(\d\d):(\d\d)")
_DAY_NAMES = {name: i for i, name in enumerate(WEEKDAY_NAMES)} | {
    full: i
    for i, full in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))
}


@dataclass(frozen=True)
class PolicyFile:
    """A parsed policy file: the on-chain policy and the optional fragment threshold ``t``."""

    policy: Policy
    threshold: int | None = None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _mapping(
    value: object, path: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()
) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PolicyFileError(path or "(file)", f"must be a mapping, not {_kind(value)}")
    for key in value:
        if not isinstance(key, str) or key not in allowed:
            raise PolicyFileError(
                _join(path, str(key)), f"unknown key (expected one of: {', '.join(allowed)})"
            )
    for key in required:
        if key not in value:
            raise PolicyFileError(_join(path, key), "required")
    return value


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _list(value: object, path: str, low: int, high: int, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise PolicyFileError(path, f"must be a list, not {_kind(value)}")
    if not low <= len(value) <= high:
        raise PolicyFileError(path, f"must list {low} to {high} {what}, not {len(value)}")
    return value


def _int(value: object, path: str, low: int, high: int, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyFileError(path, f"must be an integer, not {_kind(value)}")
    if not low <= value <= high:
        raise PolicyFileError(path, f"must be between {low} and {high}{hint}")
    return value


def _account(value: object, path: str, resolve: Resolver) -> str:
    if not isinstance(value, str) or not value:
        raise PolicyFileError(path, f"must be an account name or 0x address, not {_kind(value)}")
    try:
        if value[:2].lower() == "0x":
            return normalize_address(value, path)
        try:
            resolved = resolve(value)
        except (LookupError, ValueError, ShardKeyError) as exc:
            raise PolicyFileError(path, f"unknown account {value!r} ({exc})") from None
        return normalize_address(resolved, path)
    except PolicyValueError as exc:
        raise PolicyFileError(path, exc.problem) from None


def _accounts(value: object, path: str, resolve: Resolver, cap: int, what: str) -> tuple[str, ...]:
    items = _list(value, path, 1, cap, what)
    out: list[str] = []
    for i, item in enumerate(items):
        address = _account(item, f"{path}[{i}]", resolve)
        if address in out:
            raise PolicyFileError(f"{path}[{i}]", f"duplicate {what[:-1]} {item!r}")
        out.append(address)
    return tuple(out)


def _timestamp(value: object, path: str) -> int:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise PolicyFileError(path, f"not an ISO 8601 timestamp: {value!r}") from None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise PolicyFileError(path, "timestamp without time zone is ambiguous; end it in Z")
        if value.microsecond:
            raise PolicyFileError(path, "must be a whole second")
        seconds = (value - _EPOCH) // timedelta(seconds=1)
    elif isinstance(value, date):
        raise PolicyFileError(path, "a date alone is ambiguous; write e.g. 2026-01-01T00:00:00Z")
    elif isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    else:
        raise PolicyFileError(path, f"must be a timestamp, not {_kind(value)}")
    if not 1 <= seconds < 1 << 64:
        raise PolicyFileError(path, "must be after 1970-01-01T00:00:00Z")
    return seconds


def _daily(value: object, path: str) -> tuple[int, int]:
    bad = f'must look like "HH:MM-HH:MM" (UTC, end exclusive), not {value!r}'
    match = _DAILY.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise PolicyFileError(path, bad)
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
        raise PolicyFileError(path, bad)
    start, end = h1 * 60 + m1, (h2 * 60 + m2) % 1440
    if (h1, m1) == (h2, m2):
        raise PolicyFileError(path, "start equals end; omit daily for no daily window")
    return start, end


def _weekdays(value: object, path: str) -> int:
    items = _list(value, path, 1, 7, "weekdays")
    days: list[str] = []
    for i, item in enumerate(items):
        index = _DAY_NAMES.get(item.lower()) if isinstance(item, str) else None
        if index is None:
            raise PolicyFileError(f"{path}[{i}]", f"unknown weekday {item!r} (mon .. sun)")
        if WEEKDAY_NAMES[index] in days:
            raise PolicyFileError(f"{path}[{i}]", f"duplicate weekday {item!r}")
        days.append(WEEKDAY_NAMES[index])
    return weekday_mask_from_names(days)


def _degrees(value: object, path: str, kind: str) -> int:
    try:
        return degrees_to_e6(value, "lat" if kind == "lat" else "lon")  # type: ignore[arg-type]
    except PolicyValueError as exc:
        raise PolicyFileError(path, exc.problem) from None


def _radius_m(value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyFileError(path, f"must be a number of kilometres, not {_kind(value)}")
    try:
        metres = (Decimal(repr(value)) * 1000).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    except InvalidOperation:
        raise PolicyFileError(path, f"must be a finite number, not {value!r}") from None
    if not metres.is_finite() or value <= 0:
        raise PolicyFileError(path, f"must be > 0, not {value!r}")
    if not 1 <= metres <= UINT32_MAX:
        raise PolicyFileError(path, f"must be between 0.001 and {UINT32_MAX / 1000}")
    return int(metres)


def _region(value: object, path: str) -> Circle | Polygon:
    if isinstance(value, dict) and "polygon" in value:
        item = _mapping(value, path, ("polygon",))
        points = _list(
            item["polygon"],
            _join(path, "polygon"),
            MIN_POLYGON_VERTICES,
            MAX_POLYGON_VERTICES,
            "points",
        )
        lats: list[int] = []
        lons: list[int] = []
        for i, point in enumerate(points):
            p = f"{path}.polygon[{i}]"
            if not isinstance(point, list) or len(point) != 2:
                raise PolicyFileError(p, "must be a [lat, lon] pair")
            lats.append(_degrees(point[0], f"{p}[0]", "lat"))
            lons.append(_degrees(point[1], f"{p}[1]", "lon"))
        return Polygon(tuple(lats), tuple(lons))
    item = _mapping(value, path, ("lat", "lon", "radius_km"), ("lat", "lon", "radius_km"))
    return Circle(
        _degrees(item["lat"], _join(path, "lat"), "lat"),
        _degrees(item["lon"], _join(path, "lon"), "lon"),
        _radius_m(item["radius_km"], _join(path, "radius_km")),
    )


def _group(value: object, path: str, resolve: Resolver) -> ApprovalGroup:
    item = _mapping(value, path, ("group", "members", "required"), ("group", "members", "required"))
    name = item["group"]
    if not isinstance(name, str) or not name:
        raise PolicyFileError(_join(path, "group"), "must be a non-empty string")
    members = _accounts(item["members"], _join(path, "members"), resolve, MAX_GROUP_MEMBERS, "members")
    required = _int(item["required"], _join(path, "required"), 1, len(members), " (members)")
    return ApprovalGroup(name, members, required)


def parse_policy_yaml(text: str, resolve: Resolver) -> PolicyFile:
    """Parse a YAML policy file into a validated :class:`PolicyFile`.

    ``resolve`` maps account names to checksummed addresses (it may raise
    ``LookupError``, ``ValueError`` or a ``ShardKeyError`` for unknown names); ``0x``
    addresses are checked here without calling it. Raises :class:`PolicyFileError`
    naming the key path on any problem.
    """
    from shardkey.policy.yaml_loader import YAMLError, load_yaml  # PyYAML: only where a file is read

    try:
        doc = load_yaml(text)
    except YAMLError as exc:
        raise PolicyFileError("(file)", f"not valid YAML: {exc}") from None
    root = _mapping(doc, "", ("requesters", "time", "geo", "approvals", "approval_window", "threshold"))
    fields: dict[str, Any] = {}
    if "requesters" in root:
        fields["requesters"] = _accounts(
            root["requesters"], "requesters", resolve, MAX_REQUESTERS, "requesters"
        )
    if "time" in root:
        fields |= _time_fields(root["time"])
    if "geo" in root:
        fields |= _geo_fields(root["geo"], resolve)
    if "approvals" in root:
        groups = _list(root["approvals"], "approvals", 1, MAX_GROUPS, "groups")
        parsed = [_group(g, f"approvals[{i}]", resolve) for i, g in enumerate(groups)]
        for i, group in enumerate(parsed):
            if group.name in [g.name for g in parsed[:i]]:
                raise PolicyFileError(f"approvals[{i}].group", f"duplicate group {group.name!r}")
        for i, j, member in shared_members(parsed):
            raise PolicyFileError(f"approvals[{j}].members", two_groups_problem(member, parsed[i].name))
        fields["groups"] = tuple(parsed)
    fields["approval_window"] = _int(
        root.get("approval_window", DEFAULT_APPROVAL_WINDOW), "approval_window", 1, UINT32_MAX
    )
    threshold = None
    if "threshold" in root:
        threshold = _int(root["threshold"], "threshold", 1, MAX_THRESHOLD)
    policy = Policy(**fields)
    try:
        policy.validate()
    except PolicyValueError as exc:  # defence in depth: the checks above should catch all
        raise PolicyFileError(exc.path, exc.problem) from None
    return PolicyFile(policy, threshold)


def _time_fields(value: object) -> dict[str, Any]:
    item = _mapping(value, "time", ("not_before", "not_after", "daily", "weekdays"))
    fields: dict[str, Any] = {}
    if "not_before" in item:
        fields["not_before"] = _timestamp(item["not_before"], "time.not_before")
    if "not_after" in item:
        fields["not_after"] = _timestamp(item["not_after"], "time.not_after")
        if fields["not_after"] < fields.get("not_before", 0):
            raise PolicyFileError("time.not_after", "must not be before time.not_before")
    if "daily" in item:
        fields["daily_start_minute"], fields["daily_end_minute"] = _daily(item["daily"], "time.daily")
    if "weekdays" in item:
        fields["weekday_mask"] = _weekdays(item["weekdays"], "time.weekdays")
    return fields


def _geo_fields(value: object, resolve: Resolver) -> dict[str, Any]:
    item = _mapping(
        value,
        "geo",
        ("attestors", "max_age", "max_accuracy_m", "regions"),
        ("attestors", "max_age", "regions"),
    )
    regions = [
        _region(r, f"geo.regions[{i}]")
        for i, r in enumerate(_list(item["regions"], "geo.regions", 1, MAX_REGIONS, "regions"))
    ]
    polygons = tuple(r for r in regions if isinstance(r, Polygon))
    if polygons and "max_accuracy_m" not in item:
        raise PolicyFileError("geo.max_accuracy_m", POLYGON_ACCURACY_PROBLEM)
    return {
        "attestors": _accounts(item["attestors"], "geo.attestors", resolve, MAX_ATTESTORS, "attestors"),
        "max_attestation_age": _int(item["max_age"], "geo.max_age", 1, UINT32_MAX),
        "max_accuracy_m": _int(
            item.get("max_accuracy_m", 0),
            "geo.max_accuracy_m",
            1 if "max_accuracy_m" in item else 0,
            UINT32_MAX,
        ),
        "circles": tuple(r for r in regions if isinstance(r, Circle)),
        "polygons": polygons,
    }


def _iso(ts: int) -> str:
    return (_EPOCH + timedelta(seconds=ts)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _number(value: float) -> float | int:
    return int(value) if value.is_integer() else value


def policy_to_yaml_dict(
    policy: Policy, name_of: Callable[[str], str | None], *, threshold: int | None = None
) -> dict[str, Any]:
    """Render ``policy`` in the policy-file shape (for ``shardkey policy show``).

    Addresses become names where ``name_of`` knows them, micro-degrees become degrees,
    metres kilometres, timestamps ISO 8601 UTC strings; unset conditions are omitted.
    Parsing the result (dumped as YAML) gives back the same policy, except that a
    policy without a daily window always comes back with both minutes 0.
    """

    def who(address: str) -> str:
        return name_of(address) or address

    out: dict[str, Any] = {}
    if policy.requesters:
        out["requesters"] = [who(a) for a in policy.requesters]
    time: dict[str, Any] = {}
    if policy.not_before:
        time["not_before"] = _iso(policy.not_before)
    if policy.not_after:
        time["not_after"] = _iso(policy.not_after)
    start, end = policy.daily_start_minute, policy.daily_end_minute
    if start != end:
        time["daily"] = f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"
    if policy.weekday_mask:
        time["weekdays"] = weekday_names_from_mask(policy.weekday_mask)
    if time:
        out["time"] = time
    if policy.attestors or policy.circles or policy.polygons:
        geo: dict[str, Any] = {
            "attestors": [who(a) for a in policy.attestors],
            "max_age": policy.max_attestation_age,
        }
        if policy.max_accuracy_m:
            geo["max_accuracy_m"] = policy.max_accuracy_m
        regions: list[dict[str, Any]] = [
            {
                "lat": e6_to_degrees(c.lat_e6),
                "lon": e6_to_degrees(c.lon_e6),
                "radius_km": _number(c.radius_m / 1000),
            }
            for c in policy.circles
        ]
        regions += [
            {
                "polygon": [
                    [e6_to_degrees(la), e6_to_degrees(lo)]
                    for la, lo in zip(p.lats_e6, p.lons_e6, strict=True)
                ]
            }
            for p in policy.polygons
        ]
        geo["regions"] = regions
        out["geo"] = geo
    if policy.groups:
        out["approvals"] = [
            {"group": g.name, "members": [who(m) for m in g.members], "required": g.required}
            for g in policy.groups
        ]
    out["approval_window"] = policy.approval_window
    if threshold is not None:
        out["threshold"] = threshold
    return out
