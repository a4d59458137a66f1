"""Round trips over random valid policies: YAML -> Policy -> ABI tuple -> Policy."""

from __future__ import annotations

import yaml
from eth_abi.abi import decode, encode
from eth_utils.address import to_checksum_address
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from shardkey.policy import (
    POLICY_ABI_TYPE,
    ApprovalGroup,
    Circle,
    Policy,
    PolicyFile,
    Polygon,
    parse_policy_yaml,
    policy_to_yaml_dict,
)
from shardkey.policy.model import MAX_ENCODED_BYTES

ACCOUNTS: dict[str, str] = {f"acct-{i}": to_checksum_address(f"0x{i:040x}") for i in range(1, 9)}
NAMES: dict[str, str] = {v: k for k, v in ACCOUNTS.items()}


def resolve(name: str) -> str:
    return ACCOUNTS[name]


addresses = st.one_of(
    st.sampled_from(sorted(ACCOUNTS.values())),
    st.binary(min_size=20, max_size=20).map(lambda b: to_checksum_address(b)),
)
lats = st.integers(-90_000_000, 90_000_000)
lons = st.integers(-180_000_000, 180_000_000)
circles = st.builds(Circle, lats, lons, st.integers(1, (1 << 32) - 1))


@st.composite
def polygons(draw: st.DrawFn) -> Polygon:
    n = draw(st.integers(3, 32))
    return Polygon(tuple(draw(lats) for _ in range(n)), tuple(draw(lons) for _ in range(n)))


@st.composite
def group_lists(draw: st.DrawFn) -> tuple[ApprovalGroup, ...]:
    """0..3 groups; a member is in one group only (the contract refuses one in two)."""
    count = draw(st.integers(0, 3))
    pool = draw(st.lists(addresses, min_size=count, max_size=6 * count, unique=True))
    cuts = sorted(draw(st.lists(st.integers(1, max(1, len(pool) - 1)), min_size=max(0, count - 1),
                                max_size=max(0, count - 1), unique=True))) if count > 1 else []
    bounds = [0, *cuts, len(pool)]
    found = []
    for i in range(count):
        members = pool[bounds[i]:bounds[i + 1]]
        found.append(ApprovalGroup(f"group-{i}", tuple(members), draw(st.integers(1, len(members)))))
    return tuple(found)


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    ts = st.integers(1, 253_402_300_799)  # up to 9999-12-31T23:59:59Z
    nb, na = draw(st.one_of(st.just(0), ts)), draw(st.one_of(st.just(0), ts))
    if nb and na and nb > na:
        nb, na = na, nb
    start, end = draw(st.integers(0, 1439)), draw(st.integers(0, 1439))
    if start == end:  # "no daily window" is rendered as no key, which parses to 0, 0
        start = end = 0
    geo = draw(st.booleans())
    n_circles = draw(st.integers(0, 4))
    regions = (
        (
            tuple(draw(circles) for _ in range(n_circles)),
            tuple(draw(polygons()) for _ in range(draw(st.integers(0 if n_circles else 1, 3)))),
        )
        if geo
        else ((), ())
    )
    return Policy(
        requesters=tuple(draw(st.lists(addresses, max_size=4, unique=True))),
        not_before=nb,
        not_after=na,
        daily_start_minute=start,
        daily_end_minute=end,
        weekday_mask=draw(st.integers(0, 127)),
        attestors=tuple(draw(st.lists(addresses, min_size=1, max_size=3, unique=True))) if geo else (),
        max_attestation_age=draw(st.integers(1, (1 << 32) - 1)) if geo else 0,
        max_accuracy_m=draw(st.integers(1 if regions[1] else 0, (1 << 32) - 1)) if geo else 0,
        circles=regions[0],
        polygons=regions[1],
        groups=draw(group_lists()),
        approval_window=draw(st.integers(1, (1 << 32) - 1)),
    )


@settings(max_examples=100, deadline=None)
@given(policies(), st.one_of(st.none(), st.integers(1, 255)))
def test_yaml_policy_abi_round_trip(policy: Policy, threshold: int | None) -> None:
    # Several polygons of many vertices can encode over the contract's cap; that refusal
    # is tested on its own. Here only policies the contract would take.
    assume(len(encode([POLICY_ABI_TYPE], [policy.to_abi_tuple()])) <= MAX_ENCODED_BYTES)
    policy.validate()
    text = yaml.safe_dump(policy_to_yaml_dict(policy, lambda a: NAMES.get(a), threshold=threshold))
    parsed = parse_policy_yaml(text, resolve)
    assert parsed == PolicyFile(policy, threshold)
    (decoded,) = decode([POLICY_ABI_TYPE], encode([POLICY_ABI_TYPE], [policy.to_abi_tuple()]))
    assert Policy.from_abi_tuple(decoded) == policy
    assert Policy.from_abi_tuple(parsed.policy.to_abi_tuple()) == policy
