"""The Key Access Policy as frozen dataclasses mirroring the on-chain ``Policy`` struct.

Field order, types and bounds follow ``docs/ARCHITECTURE.md`` ("Policy struct") and the
checks ``DatasetRegistry`` applies on registration; :meth:`Policy.validate` enforces the
same bounds. Addresses are kept as EIP-55 checksummed ``0x`` strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_utils.address import is_checksum_address, is_hex_address, to_checksum_address

from shardkey.policy.errors import PolicyValueError
from shardkey.policy.geo import LAT_MAX_E6, LON_MAX_E6
from shardkey.policy.window import ALL_WEEKDAYS_MASK, MINUTES_PER_DAY

MAX_REQUESTERS = 64
MAX_ATTESTORS = 16
MAX_GROUP_MEMBERS = 32
MAX_REGIONS = 16
"""Cap on ``len(circles) + len(polygons)``."""
MAX_GROUPS = 8
MIN_POLYGON_VERTICES = 3
MAX_POLYGON_VERTICES = 32
MAX_ENCODED_BYTES = 8192  # PolicyTooLarge in the contract
DEFAULT_APPROVAL_WINDOW = 3600

POLICY_ABI_TYPE = (
    "(address[],uint64,uint64,uint16,uint16,uint8,address[],uint32,uint32,"
    "(int32,int32,uint32)[],(int32[],int32[])[],(string,address[],uint8)[],uint32)"
)
"""ABI type of the ``Policy`` struct, for ``eth_abi.encode([POLICY_ABI_TYPE], [...])``."""

AbiTuple = tuple[Any, ...]


def normalize_address(value: object, path: str = "address") -> str:
    """Return ``value`` as a checksummed address, or raise :class:`PolicyValueError`.

    Accepts ``0x`` + 40 hex digits in one case, or mixed case with a valid EIP-55
    checksum (a mixed-case address with a wrong checksum is a typo and is refused).
    """
    if not isinstance(value, str) or not value.startswith("0x") or not is_hex_address(value):
        raise PolicyValueError(path, f"not an address (0x + 40 hex digits): {value!r}")
    body = value[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise PolicyValueError(path, f"bad EIP-55 checksum in address {value}")
    return str(to_checksum_address(value))


def _addresses(values: Sequence[object], path: str) -> tuple[str, ...]:
    return tuple(normalize_address(v, f"{path}[{i}]") for i, v in enumerate(values))


def _int(path: str, value: object, low: int, high: int, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyValueError(path, f"must be an integer, not {type(value).__name__}")
    if not low <= value <= high:
        raise PolicyValueError(path, f"must be between {low} and {high}{hint}")
    return value


def _uint(path: str, value: object, bits: int) -> int:
    return _int(path, value, 0, (1 << bits) - 1)


@dataclass(frozen=True)
class Circle:
    """A circular region: centre in micro-degrees, radius in metres (``radius_m > 0``)."""

    lat_e6: int
    lon_e6: int
    radius_m: int

    def validate(self, path: str = "circle") -> None:
        """Raise :class:`PolicyValueError` unless the circle is within the contract's bounds."""
        _int(f"{path}.lat_e6", self.lat_e6, -LAT_MAX_E6, LAT_MAX_E6)
        _int(f"{path}.lon_e6", self.lon_e6, -LON_MAX_E6, LON_MAX_E6)
        _int(f"{path}.radius_m", self.radius_m, 1, (1 << 32) - 1)

    def to_abi_tuple(self) -> AbiTuple:
        """Return ``(latE6, lonE6, radiusM)``."""
        return (self.lat_e6, self.lon_e6, self.radius_m)


@dataclass(frozen=True)
class Polygon:
    """A polygon region: vertex latitudes and longitudes in micro-degrees (3..32 vertices)."""

    lats_e6: tuple[int, ...]
    lons_e6: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "lats_e6", tuple(self.lats_e6))
        object.__setattr__(self, "lons_e6", tuple(self.lons_e6))

    def validate(self, path: str = "polygon") -> None:
        """Raise :class:`PolicyValueError` unless the polygon is within the contract's bounds."""
        if len(self.lats_e6) != len(self.lons_e6):
            raise PolicyValueError(path, "lats_e6 and lons_e6 must have the same length")
        n = len(self.lats_e6)
        if not MIN_POLYGON_VERTICES <= n <= MAX_POLYGON_VERTICES:
            bounds = f"{MIN_POLYGON_VERTICES} to {MAX_POLYGON_VERTICES}"
            raise PolicyValueError(path, f"must have {bounds} vertices, not {n}")
        for i, (lat, lon) in enumerate(zip(self.lats_e6, self.lons_e6, strict=True)):
            _int(f"{path}.lats_e6[{i}]", lat, -LAT_MAX_E6, LAT_MAX_E6)
            _int(f"{path}.lons_e6[{i}]", lon, -LON_MAX_E6, LON_MAX_E6)

    def to_abi_tuple(self) -> AbiTuple:
        """Return ``(latsE6, lonsE6)``."""
        return (self.lats_e6, self.lons_e6)


@dataclass(frozen=True)
class ApprovalGroup:
    """An approval group: distinct ``members``, of whom ``required`` must approve."""

    name: str
    members: tuple[str, ...]
    required: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "members", _addresses(self.members, "members"))

    def validate(self, path: str = "group") -> None:
        """Raise :class:`PolicyValueError` unless the group is within the contract's bounds."""
        if not isinstance(self.name, str):
            raise PolicyValueError(f"{path}.name", "must be a string")
        n = len(self.members)
        if not 1 <= n <= MAX_GROUP_MEMBERS:
            raise PolicyValueError(f"{path}.members", f"must have 1 to {MAX_GROUP_MEMBERS} members")
        if len(set(self.members)) != n:
            raise PolicyValueError(f"{path}.members", "members must be distinct")
        _int(f"{path}.required", self.required, 1, n, " (members)")

    def to_abi_tuple(self) -> AbiTuple:
        """Return ``(name, members, required)``."""
        return (self.name, self.members, self.required)


POLYGON_ACCURACY_PROBLEM = ("must be > 0 when a region is a polygon (a polygon check ignores the "
                            "fix's accuracy, so a coarse fix could pass)")


def shared_members(groups: Sequence[ApprovalGroup]) -> list[tuple[int, int, str]]:
    """``(first group, later group, member)`` for every member listed in two groups."""
    found: list[tuple[int, int, str]] = []
    for j, later in enumerate(groups):
        for i, earlier in enumerate(groups[:j]):
            found.extend((i, j, m) for m in later.members if m in earlier.members)
    return found


def two_groups_problem(member: str, first_group: str) -> str:
    """The message for a member listed in two approval groups (model and YAML file)."""
    return (f"{member} is already a member of group {first_group!r}; an approver may be in one "
            "approval group only")


@dataclass(frozen=True)
class Policy:
    """A Key Access Policy, field for field the Solidity ``Policy`` struct.

    Zero / empty means "no condition": ``requesters`` empty = anyone, ``not_before`` /
    ``not_after`` 0 = unbounded, ``daily_start_minute == daily_end_minute`` = no daily
    window, ``weekday_mask`` 0 = every day, ``attestors`` empty = no geographic
    condition, ``max_accuracy_m`` 0 = any accuracy, ``groups`` empty = no approvals.
    """

    requesters: tuple[str, ...] = ()
    not_before: int = 0
    not_after: int = 0
    daily_start_minute: int = 0
    daily_end_minute: int = 0
    weekday_mask: int = 0
    attestors: tuple[str, ...] = ()
    max_attestation_age: int = 0
    max_accuracy_m: int = 0
    circles: tuple[Circle, ...] = ()
    polygons: tuple[Polygon, ...] = ()
    groups: tuple[ApprovalGroup, ...] = ()
    approval_window: int = DEFAULT_APPROVAL_WINDOW

    def __post_init__(self) -> None:
        object.__setattr__(self, "requesters", _addresses(self.requesters, "requesters"))
        object.__setattr__(self, "attestors", _addresses(self.attestors, "attestors"))
        object.__setattr__(self, "circles", tuple(self.circles))
        object.__setattr__(self, "polygons", tuple(self.polygons))
        object.__setattr__(self, "groups", tuple(self.groups))

    def validate(self) -> None:
        """Raise :class:`PolicyValueError` naming the field unless the contract would accept it."""
        if len(self.requesters) > MAX_REQUESTERS:
            raise PolicyValueError("requesters", f"at most {MAX_REQUESTERS} requesters")
        nb = _uint("not_before", self.not_before, 64)
        na = _uint("not_after", self.not_after, 64)
        if nb != 0 and na != 0 and nb > na:
            raise PolicyValueError("not_after", "must not be before not_before")
        _int("daily_start_minute", self.daily_start_minute, 0, MINUTES_PER_DAY - 1)
        _int("daily_end_minute", self.daily_end_minute, 0, MINUTES_PER_DAY - 1)
        _int("weekday_mask", self.weekday_mask, 0, ALL_WEEKDAYS_MASK)
        if len(self.attestors) > MAX_ATTESTORS:
            raise PolicyValueError("attestors", f"at most {MAX_ATTESTORS} attestors")
        age = _uint("max_attestation_age", self.max_attestation_age, 32)
        _uint("max_accuracy_m", self.max_accuracy_m, 32)
        if len(self.circles) + len(self.polygons) > MAX_REGIONS:
            raise PolicyValueError("circles", f"at most {MAX_REGIONS} circles and polygons")
        for i, circle in enumerate(self.circles):
            circle.validate(f"circles[{i}]")
        for i, polygon in enumerate(self.polygons):
            polygon.validate(f"polygons[{i}]")
        if self.attestors:
            if age == 0:
                raise PolicyValueError("max_attestation_age", "must be > 0 when attestors are set")
            if not self.circles and not self.polygons:
                raise PolicyValueError("circles", "at least one region when attestors are set")
        elif self.circles or self.polygons:
            raise PolicyValueError("circles", "regions need attestors (no geographic condition)")
        if self.polygons and self.max_accuracy_m == 0:
            raise PolicyValueError("max_accuracy_m", POLYGON_ACCURACY_PROBLEM)
        if len(self.groups) > MAX_GROUPS:
            raise PolicyValueError("groups", f"at most {MAX_GROUPS} groups")
        for i, group in enumerate(self.groups):
            group.validate(f"groups[{i}]")
        for i, j, member in shared_members(self.groups):
            raise PolicyValueError(f"groups[{j}].members", two_groups_problem(member, self.groups[i].name))
        _int("approval_window", self.approval_window, 1, (1 << 32) - 1)
        size = len(abi_encode([POLICY_ABI_TYPE], [self.to_abi_tuple()]))
        if size > MAX_ENCODED_BYTES:
            raise PolicyValueError("policy", f"encodes to {size} bytes; the contract takes at most "
                                   f"{MAX_ENCODED_BYTES} (fewer members, regions or vertices)")

    def to_abi_tuple(self) -> AbiTuple:
        """Return the nested tuple web3 / eth_abi encode as the Solidity ``Policy`` struct.

        Structs and arrays are tuples, in the struct's field order (see
        :data:`POLICY_ABI_TYPE`), so the result equals what ``eth_abi.decode`` returns
        up to address letter case.
        """
        return (
            self.requesters,
            self.not_before,
            self.not_after,
            self.daily_start_minute,
            self.daily_end_minute,
            self.weekday_mask,
            self.attestors,
            self.max_attestation_age,
            self.max_accuracy_m,
            tuple(c.to_abi_tuple() for c in self.circles),
            tuple(p.to_abi_tuple() for p in self.polygons),
            tuple(g.to_abi_tuple() for g in self.groups),
            self.approval_window,
        )

    @classmethod
    def from_abi_tuple(cls, value: Sequence[Any], *, validate: bool = True) -> Policy:
        """Build a policy from its ABI tuple (as web3 returns it); inverse of :meth:`to_abi_tuple`.

        Addresses are checksummed. Unless ``validate`` is false, the result is checked
        with :meth:`validate`, so a policy the contract would refuse fails closed.
        """
        try:
            (
                requesters,
                nb,
                na,
                start,
                end,
                mask,
                attestors,
                age,
                acc,
                circles,
                polygons,
                groups,
                window,
            ) = value
            policy = cls(
                requesters=tuple(requesters),
                not_before=nb,
                not_after=na,
                daily_start_minute=start,
                daily_end_minute=end,
                weekday_mask=mask,
                attestors=tuple(attestors),
                max_attestation_age=age,
                max_accuracy_m=acc,
                circles=tuple(Circle(lat, lon, r) for lat, lon, r in circles),
                polygons=tuple(Polygon(tuple(la), tuple(lo)) for la, lo in polygons),
                groups=tuple(ApprovalGroup(n, tuple(m), r) for n, m, r in groups),
                approval_window=window,
            )
        except (TypeError, ValueError) as exc:
            raise PolicyValueError("policy", f"malformed ABI tuple: {exc}") from None
        if validate:
            policy.validate()
        return policy
