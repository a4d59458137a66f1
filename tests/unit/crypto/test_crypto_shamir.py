"""Shamir over GF(2^8): field facts, known answers, thresholds, commitments."""

from __future__ import annotations

import hashlib
import itertools
import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardkey.crypto import shamir
from shardkey.crypto.errors import (
    CryptoInputError,
    FragmentCommitmentError,
    ShamirParameterError,
    ShareError,
)
from shardkey.crypto.shamir import Share, combine, gf_inv, gf_mul, split
from shardkey.errors import RestoreError

DS = bytes.fromhex("11" * 32)

# --- independent slow reference: log/antilog tables from the generator 3 ---------


def _xtime(a: int) -> int:
    a <<= 1
    return a ^ 0x11B if a & 0x100 else a


EXP = [0] * 512
LOG = [0] * 256
_v = 1
for _i in range(255):
    EXP[_i] = _v
    LOG[_v] = _i
    _v ^= _xtime(_v)  # multiply by 3 = x + 1
for _i in range(255, 512):
    EXP[_i] = EXP[_i - 255]


def ref_mul(a: int, b: int) -> int:
    return 0 if a == 0 or b == 0 else EXP[LOG[a] + LOG[b]]


def ref_div(a: int, b: int) -> int:
    return 0 if a == 0 else EXP[(LOG[a] - LOG[b]) % 255]


def ref_eval(coeffs: list[int], x: int) -> int:
    """Evaluate sum c_i x^i naively (no Horner) with the table arithmetic."""
    y = 0
    for i, c in enumerate(coeffs):
        xp = 1
        for _ in range(i):
            xp = ref_mul(xp, x)
        y ^= ref_mul(c, xp)
    return y


def ref_interpolate_zero(points: list[tuple[int, int]]) -> int:
    s = 0
    for i, (xi, yi) in enumerate(points):
        li = 1
        for j, (xj, _) in enumerate(points):
            if i != j:
                li = ref_mul(li, ref_div(xj, xj ^ xi))
        s ^= ref_mul(yi, li)
    return s


# --- field -------------------------------------------------------------------------


def test_fips197_multiplication_facts() -> None:
    assert gf_mul(0x57, 0x83) == 0xC1
    assert gf_mul(0x57, 0x13) == 0xFE
    assert [gf_mul(0x57, b) for b in (0x02, 0x04, 0x08, 0x10)] == [0xAE, 0x47, 0x8E, 0x07]
    assert gf_inv(0x53) == 0xCA
    assert gf_inv(0xCA) == 0x53
    assert gf_inv(0) == 0
    assert gf_inv(1) == 1


def test_field_matches_reference_exhaustively() -> None:
    assert len(set(EXP[:255])) == 255  # 3 generates the multiplicative group
    for a in range(256):
        for b in range(256):
            assert gf_mul(a, b) == ref_mul(a, b)
        if a:
            assert gf_mul(a, gf_inv(a)) == 1


def test_packed_multiply_matches_scalar() -> None:
    p = shamir._Packed(256)
    v = int.from_bytes(bytes(range(256)), "big")
    for s in (0, 1, 2, 3, 0x53, 0x83, 0xFF):
        got = p.mul_scalar(v, s).to_bytes(256, "big")
        assert list(got) == [gf_mul(a, s) for a in range(256)]


# --- known answers ---------------------------------------------------------------


def test_known_answer_from_fips_facts() -> None:
    """t=2: share(x) = secret ^ a1*x; with a1=0x57, x=0x83 the share is secret ^ 0xC1."""
    secret = bytes([0x00, 0x01, 0xFF])
    shares = split(secret, 2, 0x83, lambda n: bytes([0x57]) * n)
    assert shares[0x83 - 1].x == 0x83
    assert shares[0x83 - 1].value == bytes([0xC1, 0xC0, 0x3E])
    assert shares[0x13 - 1].value == bytes([0xFE, 0xFF, 0x01])
    assert combine([shares[0x83 - 1], shares[0x13 - 1]]) == secret


@pytest.mark.parametrize(("t", "n", "seed"), [(1, 1, 0), (2, 3, 1), (3, 5, 2), (5, 9, 3), (8, 8, 4)])
def test_split_matches_reference_polynomial(t: int, n: int, seed: int) -> None:
    r = random.Random(seed)
    secret = r.randbytes(32)
    rand = r.randbytes(32 * (t - 1))
    coeff_bytes = [secret] + [rand[i * 32 : (i + 1) * 32] for i in range(t - 1)]
    shares = split(secret, t, n, lambda k: rand[:k])
    for s in shares:
        want = bytes(ref_eval([c[b] for c in coeff_bytes], s.x) for b in range(32))
        assert s.value == want
    # the reference interpolation agrees with combine on the first t shares
    sub = shares[:t]
    ref = bytes(ref_interpolate_zero([(s.x, s.value[b]) for s in sub]) for b in range(32))
    assert ref == secret == combine(sub)


def test_combine_hand_built_vector() -> None:
    """Shares computed purely with the reference tables from fixed coefficients."""
    coeffs = [[0xDE, 0xAD], [0x01, 0x02], [0x80, 0x7F]]  # secret 0xDEAD, t=3
    shares = [Share(x, bytes(ref_eval([c[b] for c in coeffs], x) for b in range(2))) for x in (2, 7, 200)]
    assert combine(shares) == bytes([0xDE, 0xAD])


# --- thresholds ------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(), t=st.integers(1, 8), extra=st.integers(0, 5), secret=st.binary(min_size=32, max_size=32)
)
def test_any_t_rebuild_and_t_minus_1_do_not(data: st.DataObject, t: int, extra: int, secret: bytes) -> None:
    n = t + extra
    shares = split(secret, t, n, os.urandom)
    assert [s.x for s in shares] == list(range(1, n + 1))
    k = data.draw(st.integers(t, n))
    subset = data.draw(st.permutations(shares))[:k]
    assert combine(subset) == secret
    if t > 1:
        # fails except with probability 2^-256
        assert combine(subset[: t - 1]) != secret
        with pytest.raises(ShareError, match=f"need {t} shares"):
            combine(subset[: t - 1], threshold=t)


def test_all_subsets_small_case() -> None:
    secret = os.urandom(32)
    shares = split(secret, 3, 6, os.urandom)
    for subset in itertools.combinations(shares, 3):
        assert combine(subset) == secret


def test_t_minus_1_shares_carry_no_information() -> None:
    """t=2, 1-byte secret: for any value of share x=1, every secret is equally likely."""
    counts: dict[int, dict[int, int]] = {}
    for s in range(256):
        for a1 in range(256):
            coeff = bytes([a1])
            y = split(bytes([s]), 2, 2, coeff.__mul__)[0].value[0]
            counts.setdefault(y, {}).setdefault(s, 0)
            counts[y][s] += 1
    assert len(counts) == 256
    for per_secret in counts.values():
        assert len(per_secret) == 256
        assert set(per_secret.values()) == {1}


def test_large_parameters() -> None:
    secret = os.urandom(32)
    shares = split(secret, 255, 255, os.urandom)
    assert combine(shares) == secret
    assert combine(split(secret, 1, 255, os.urandom)[200:201]) == secret


# --- errors ----------------------------------------------------------------------


@pytest.mark.parametrize(("t", "n"), [(0, 3), (4, 3), (2, 256), (0, 0)])
def test_split_parameter_errors(t: int, n: int) -> None:
    with pytest.raises(ShamirParameterError, match="t <= n"):
        split(bytes(32), t, n, os.urandom)


def test_split_input_errors() -> None:
    with pytest.raises(ShamirParameterError, match="non-empty"):
        split(b"", 2, 3, os.urandom)
    with pytest.raises(ShamirParameterError, match="rng returned 3 bytes"):
        split(bytes(32), 2, 3, lambda n: b"abc")


def test_combine_errors() -> None:
    s = split(bytes(range(32)), 2, 4, os.urandom)
    with pytest.raises(ShareError, match="no shares"):
        combine([])
    with pytest.raises(ShareError, match="duplicate share x-coordinate 2") as info:
        combine([s[1], s[2], Share(2, s[1].value)])
    assert isinstance(info.value, RestoreError)
    with pytest.raises(ShareError, match=r"must be in 1\.\.255, got 0"):
        combine([s[0], Share(0, s[1].value)])
    with pytest.raises(ShareError, match="got 256"):
        combine([s[0], Share(256, s[1].value)])
    with pytest.raises(ShareError, match="share x=3 has 31 bytes"):
        combine([s[0], Share(3, s[2].value[:31])])
    with pytest.raises(ShareError, match="empty"):
        combine([Share(1, b"")])


def test_share_repr_hides_value() -> None:
    s = Share(3, bytes.fromhex("ab" * 32))
    assert "ab" not in repr(s)
    assert "x=3" in repr(s)


# --- commitments -----------------------------------------------------------------


def test_commitment_and_root_layout() -> None:
    share = bytes(range(32))
    c = shamir.fragment_commitment(DS, 0x01020304, 7, share)
    want = hashlib.sha256(b"shardkey/fragment/v1" + DS + bytes([1, 2, 3, 4]) + bytes([7]) + share).digest()
    assert c == want
    c2 = shamir.fragment_commitment(DS, 0, 7, share)
    root = shamir.fragments_root([c2, c])
    assert root == hashlib.sha256(b"shardkey/fragments-root/v1" + c2 + c).digest()
    # holder root sorts by shard index
    assert shamir.holder_fragments_root(DS, 7, {0x01020304: share, 0: share}) == root
    assert shamir.holder_fragments_root(DS, 7, [(0x01020304, share), (0, share)]) == root
    assert shamir.fragments_root([]) == hashlib.sha256(b"shardkey/fragments-root/v1").digest()


def test_commitment_input_errors() -> None:
    with pytest.raises(CryptoInputError, match=r"x must be in 1\.\.255"):
        shamir.fragment_commitment(DS, 0, 0, bytes(32))
    with pytest.raises(CryptoInputError, match=r"share \(shard 4, x=2\) must be 32 bytes"):
        shamir.fragment_commitment(DS, 4, 2, bytes(31))
    with pytest.raises(CryptoInputError, match="duplicate fragment for shard 1"):
        shamir.holder_fragments_root(DS, 2, [(1, bytes(32)), (1, bytes(32))])


def test_verify_names_wrong_fragment_and_holder() -> None:
    t, n, shards = 2, 4, 3
    keys = [os.urandom(32) for _ in range(shards)]
    per_shard = [split(k, t, n, os.urandom) for k in keys]
    by_x = {x: {i: per_shard[i][x - 1].value for i in range(shards)} for x in range(1, n + 1)}
    roots = {x: shamir.holder_fragments_root(DS, x, by_x[x]) for x in by_x}

    good = per_shard[1][2]
    shamir.verify_fragment(DS, 1, good, shamir.fragment_commitment(DS, 1, 3, good.value))
    forged = Share(3, bytes(32))
    with pytest.raises(FragmentCommitmentError, match="shard 1 from holder position 2") as info:
        shamir.verify_fragment(DS, 1, forged, shamir.fragment_commitment(DS, 1, 3, good.value))
    assert (info.value.x, info.value.holder_position, info.value.shard_index) == (3, 2, 1)

    # holder x=2 lies about shard 2's fragment
    tampered = dict(by_x[2])
    tampered[2] = bytes(a ^ 1 for a in tampered[2])
    with pytest.raises(FragmentCommitmentError, match=r"holder position 1 \(x=2\)") as info:
        shamir.verify_holder_fragments(DS, 2, tampered, roots[2])
    assert info.value.x == 2
    delivered = dict(by_x)
    delivered[2] = tampered
    assert shamir.bad_holders(DS, delivered, roots) == [2]
    assert shamir.bad_holders(DS, delivered, {x: r for x, r in roots.items() if x != 4}) == [2, 4]
    # drop the liar; the honest holders still rebuild every key
    honest = [x for x in delivered if x not in shamir.bad_holders(DS, delivered, roots)]
    for i in range(shards):
        assert combine(Share(x, delivered[x][i]) for x in honest[:t]) == keys[i]


def test_lagrange_coefficients_are_remembered_but_never_shared_with_a_caller() -> None:
    first = shamir.lagrange_at_zero([1, 2, 3])
    first[0] ^= 0xFF  # a caller that edits its list must not change the next caller's
    assert shamir.lagrange_at_zero([1, 2, 3]) == shamir.lagrange_at_zero((1, 2, 3)) != first
    secret = bytes(range(32))
    shares = shamir.split(secret, 3, 5, lambda n: bytes((7 * i + 3) % 256 for i in range(n)))
    assert shamir.combine([shares[0], shares[1], shares[2]]) == secret
    assert shamir.combine([shares[2], shares[0], shares[1]]) == secret  # the x's in another order
