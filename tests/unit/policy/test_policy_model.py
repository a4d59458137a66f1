"""Policy model: bounds enforced by validate(), addresses, ABI tuple shape."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from eth_abi.abi import decode, encode

from shardkey.errors import UsageError
from shardkey.policy import (
    POLICY_ABI_TYPE,
    ApprovalGroup,
    Circle,
    Policy,
    PolicyValueError,
    Polygon,
    normalize_address,
)

A = "0x" + "11" * 20
B = "0x" + "22" * 20
C = "0x" + "33" * 20
CHECKSUMMED = "0x52908400098527886E0F7030069857D2E4169EE7"  # EIP-55 test vector


def addr(i: int) -> str:
    return "0x" + f"{i:040x}"


def geo_policy(**changes: Any) -> Policy:
    base = Policy(
        attestors=(A,),
        max_attestation_age=600,
        max_accuracy_m=100,
        circles=(Circle(48_856_600, 2_352_200, 50_000),),
        polygons=(Polygon((0, 0, 10), (0, 10, 10)),),
        groups=(ApprovalGroup("g", (B, C), 2),),
    )
    return dataclasses.replace(base, **changes)


def test_valid_policies_pass() -> None:
    Policy().validate()
    geo_policy().validate()
    geo_policy(not_before=5, not_after=5, daily_start_minute=1439, weekday_mask=127).validate()


def test_addresses_are_checksummed_and_checked() -> None:
    assert normalize_address(CHECKSUMMED.lower()) == CHECKSUMMED
    assert normalize_address(CHECKSUMMED) == CHECKSUMMED
    assert normalize_address("0x" + CHECKSUMMED[2:].upper()) == CHECKSUMMED
    assert Policy(requesters=(CHECKSUMMED.lower(),)).requesters == (CHECKSUMMED,)
    bad_checksum = CHECKSUMMED[:-1] + "e"
    for bad in (bad_checksum, "0x1234", "11" * 20, "0x" + "zz" * 20, 5, None):
        with pytest.raises(PolicyValueError):
            normalize_address(bad)
    with pytest.raises(PolicyValueError, match=r"^requesters\[1\]: "):
        Policy(requesters=(A, "0xnope"))
    with pytest.raises(PolicyValueError, match=r"^members\[0\]: "):
        ApprovalGroup("g", ("bob",), 1)


BAD: list[tuple[dict[str, Any], str]] = [
    ({"circles": (Circle(90_000_001, 0, 1),)}, r"circles\[0\]\.lat_e6"),
    ({"circles": (Circle(-90_000_001, 0, 1),)}, r"circles\[0\]\.lat_e6"),
    ({"circles": (Circle(0, 180_000_001, 1),)}, r"circles\[0\]\.lon_e6"),
    ({"circles": (Circle(0, -180_000_001, 1),)}, r"circles\[0\]\.lon_e6"),
    ({"circles": (Circle(0, 0, 0),)}, r"circles\[0\]\.radius_m"),
    ({"circles": (Circle(0, 0, 1 << 32),)}, r"circles\[0\]\.radius_m"),
    ({"polygons": (Polygon((0, 1), (0, 1)),)}, r"polygons\[0\]"),
    ({"polygons": (Polygon(tuple(range(33)), tuple(range(33))),)}, r"polygons\[0\]"),
    ({"polygons": (Polygon((0, 1, 2), (0, 1)),)}, r"polygons\[0\]"),
    ({"polygons": (Polygon((0, 1, 90_000_001), (0, 1, 2)),)}, r"polygons\[0\]\.lats_e6\[2\]"),
    ({"polygons": (Polygon((0, 1, 2), (0, 1, -180_000_001)),)}, r"polygons\[0\]\.lons_e6\[2\]"),
    ({"groups": (ApprovalGroup("g", (), 1),)}, r"groups\[0\]\.members"),
    ({"groups": (ApprovalGroup("g", (B, B), 1),)}, r"groups\[0\]\.members"),
    ({"groups": (ApprovalGroup("g", (B,), 0),)}, r"groups\[0\]\.required"),
    ({"groups": (ApprovalGroup("g", (B,), 2),)}, r"groups\[0\]\.required"),
    ({"approval_window": 0}, "approval_window"),
    ({"approval_window": 1 << 32}, "approval_window"),
    ({"max_attestation_age": 0}, "max_attestation_age"),
    ({"circles": (), "polygons": ()}, "circles"),
    ({"not_before": 10, "not_after": 9}, "not_after"),
    ({"not_before": -1}, "not_before"),
    ({"not_after": 1 << 64}, "not_after"),
    ({"daily_start_minute": 1440}, "daily_start_minute"),
    ({"daily_end_minute": -1}, "daily_end_minute"),
    ({"weekday_mask": 128}, "weekday_mask"),
    ({"max_accuracy_m": 1 << 32}, "max_accuracy_m"),
    ({"requesters": tuple(addr(i) for i in range(1, 66))}, "requesters"),
    ({"attestors": tuple(addr(i) for i in range(1, 66))}, "attestors"),
    ({"circles": (Circle(0, 0, 1),) * 9, "polygons": (Polygon((0, 0, 1), (0, 1, 0)),) * 8}, "circles"),
    ({"groups": (ApprovalGroup("g", (B,), 1),) * 17}, "groups"),
    ({"groups": (ApprovalGroup("g", tuple(addr(i) for i in range(1, 66)), 1),)}, r"groups\[0\]\.members"),
    ({"weekday_mask": True}, "weekday_mask"),
    ({"attestors": ()}, "circles"),  # PolicyRegionsWithoutAttestors
    ({"attestors": (), "circles": ()}, "circles"),
]


@pytest.mark.parametrize(("changes", "path"), BAD)
def test_validate_rejects_out_of_bounds(changes: dict[str, Any], path: str) -> None:
    policy = geo_policy(**changes)
    with pytest.raises(PolicyValueError, match=f"^{path}: ") as info:
        policy.validate()
    assert isinstance(info.value, UsageError) and info.value.exit_code == 2


def test_caps_are_inclusive() -> None:
    """Each cap of the contract (PolicyValidation.sol) is reachable on its own."""
    geo_policy(requesters=tuple(addr(i) for i in range(1, 65))).validate()
    geo_policy(attestors=tuple(addr(i) for i in range(1, 17))).validate()
    geo_policy(circles=(Circle(0, 0, 1),) * 8, polygons=(Polygon((0, 0, 1), (0, 1, 0)),) * 8).validate()
    geo_policy(groups=tuple(ApprovalGroup(f"g{g}", tuple(addr(32 * g + i) for i in range(1, 33)), 32)
                            for g in range(2))).validate()
    geo_policy(groups=tuple(ApprovalGroup(f"g{g}", (addr(g + 1),), 1) for g in range(8))).validate()


def test_policy_larger_than_the_contract_accepts_is_refused() -> None:
    big = geo_policy(requesters=tuple(addr(i) for i in range(1, 65)),
                     groups=tuple(ApprovalGroup(f"g{g}", tuple(addr(32 * g + i) for i in range(1, 33)), 32)
                                  for g in range(8)))
    with pytest.raises(PolicyValueError, match=r"^policy: encodes to .* at most 8192"):
        big.validate()


def test_no_attestors_needs_no_age_or_region() -> None:
    Policy(max_attestation_age=0).validate()


def test_abi_tuple_shape_and_eth_abi_round_trip() -> None:
    policy = geo_policy(requesters=(CHECKSUMMED,), not_before=1, not_after=2, max_accuracy_m=9)
    t = policy.to_abi_tuple()
    assert t == (
        (CHECKSUMMED,),
        1,
        2,
        0,
        0,
        0,
        (normalize_address(A),),
        600,
        9,
        ((48_856_600, 2_352_200, 50_000),),
        (((0, 0, 10), (0, 10, 10)),),
        (("g", (normalize_address(B), normalize_address(C)), 2),),
        3600,
    )
    (decoded,) = decode([POLICY_ABI_TYPE], encode([POLICY_ABI_TYPE], [t]))
    assert Policy.from_abi_tuple(decoded) == policy


def test_from_abi_tuple_rejects_malformed() -> None:
    with pytest.raises(PolicyValueError, match=r"^policy: "):
        Policy.from_abi_tuple((1, 2, 3))
    bad = geo_policy(approval_window=0).to_abi_tuple()
    with pytest.raises(PolicyValueError, match=r"^approval_window: "):
        Policy.from_abi_tuple(bad)
    assert Policy.from_abi_tuple(bad, validate=False).approval_window == 0


def test_model_is_frozen_and_hashable() -> None:
    policy = geo_policy()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.not_before = 1  # type: ignore[misc]
    assert hash(policy) == hash(geo_policy())
    assert Polygon([1, 2, 3], [4, 5, 6]) == Polygon((1, 2, 3), (4, 5, 6))  # type: ignore[arg-type]


def test_polygons_need_an_accuracy_bound() -> None:
    """A polygon check ignores the fix's accuracy: without max_accuracy_m a coarse fix passes."""
    with pytest.raises(PolicyValueError, match=r"^max_accuracy_m: must be > 0 when a region is a polygon"):
        geo_policy(max_accuracy_m=0).validate()
    geo_policy(max_accuracy_m=0, polygons=()).validate()  # circles account for accuracy


def test_member_in_two_groups_is_refused_naming_it() -> None:
    policy = geo_policy(groups=(ApprovalGroup("legal", (B, C), 1), ApprovalGroup("ops", (A, C), 1)))
    with pytest.raises(PolicyValueError, match=rf"^groups\[1\]\.members: {normalize_address(C)} is "
                                                r"already a member of group 'legal'"):
        policy.validate()
