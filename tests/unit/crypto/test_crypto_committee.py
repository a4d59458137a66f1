"""Threshold KOS, pure part: deal, commitments and root, signed share envelopes, combine."""

from __future__ import annotations

import os

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from shardkey.chain.committee import recover_signer, sign_envelope
from shardkey.crypto import committee as kc
from shardkey.crypto import hpke
from shardkey.crypto.committee_envelope import (
    ENVELOPE_LEN,
    ShareEnvelope,
    decode_envelope,
    encode_envelope,
    envelope_digest,
)
from shardkey.crypto.errors import (
    CommitteeInputError,
    CommitteeThresholdError,
    HpkeDecryptionError,
    ShareCommitmentMismatch,
    ShareEnvelopeError,
    ShareRejectedError,
    ShareSignatureError,
)
from shardkey.crypto.merkle import hash_pair, verify_proof

CHAIN = 31337
COMMITTEE = "0x" + "c0" * 20
DS = bytes.fromhex("11" * 32)
MEMBERS = [Account.from_key(keccak(b"member" + bytes([i]))) for i in range(7)]
HOLDERS = ["0x" + bytes([0xA0 + j]).hex() * 20 for j in range(5)]


def _deal(t: int = 2, m: int = 3, holders: int = 2,
          rng: kc.Rng = os.urandom) -> tuple[kc.CommitteeDeal, list[bytes]]:
    keys = [os.urandom(32) for _ in range(holders)]
    return kc.deal(CHAIN, DS, 1, HOLDERS[:holders], keys, t, m, rng), keys


def _slot(j: int, i: int, request_id: int = 9) -> kc.ShareSlot:
    return kc.ShareSlot(chain_id=CHAIN, committee=COMMITTEE, request_id=request_id, dataset_id=DS,
                        holder=HOLDERS[j], member=MEMBERS[i].address, member_index=i, epoch=1)


def _envelope(d: kc.CommitteeDeal, j: int, i: int, share: bytes | None = None, request_id: int = 9) -> bytes:
    env = ShareEnvelope(request_id, DS, bytes.fromhex(HOLDERS[j][2:]), bytes.fromhex(MEMBERS[i].address[2:]),
                        1, d.shares[j][i] if share is None else share)
    return encode_envelope(sign_envelope(MEMBERS[i], env, CHAIN, COMMITTEE))


def _verify(d: kc.CommitteeDeal, j: int, i: int, blob: bytes) -> kc.VerifiedShare:
    return kc.verify_share(blob, _slot(j, i), d.commitments[j][i], recover_signer)


# --- deal, commitments, root ----------------------------------------------------------


def test_deal_shape_root_and_proofs() -> None:
    d, _ = _deal(t=2, m=3, holders=3)
    assert len(d.shares) == len(d.commitments) == 3 and all(len(r) == 3 for r in d.commitments)
    assert len(set(d.flat_commitments())) == 9
    assert kc.commitments_root(HOLDERS[:3], d.commitments) == d.root
    assert kc.commitments_root(HOLDERS[:3], kc.commitment_rows(d.flat_commitments(), 3, 3)) == d.root
    with pytest.raises(CommitteeInputError, match=r"lists 8 share commitments.*9 expected"):
        kc.commitment_rows(d.flat_commitments()[:-1], 3, 3)
    for j in range(3):
        for i in range(3):
            c = d.commitments[j][i]
            assert c == kc.share_commitment(CHAIN, DS, HOLDERS[j], i, 1, d.shares[j][i])
            proof = d.proof(j, i)
            assert kc.verify_commitment_proof(HOLDERS[j], i, c, proof, d.root)
            # the leaf binds holder and member index: the same commitment elsewhere does not verify
            assert not kc.verify_commitment_proof(HOLDERS[(j + 1) % 3], i, c, proof, d.root)
            assert not kc.verify_commitment_proof(HOLDERS[j], (i + 1) % 3, c, proof, d.root)


def test_commitment_layout_is_abi_encode_words() -> None:
    share = bytes(range(32))
    words = (keccak(b"shardkey/kos-share/v1") + CHAIN.to_bytes(32, "big") + DS + b"\0" * 12
             + bytes.fromhex(HOLDERS[0][2:]) + (4).to_bytes(32, "big") + (7).to_bytes(32, "big") + share)
    assert kc.share_commitment(CHAIN, DS, HOLDERS[0], 4, 7, share) == keccak(words)
    c = b"\x33" * 32
    inner = keccak(b"\0" * 12 + bytes.fromhex(HOLDERS[0][2:]) + (4).to_bytes(32, "big") + c)
    assert kc.commitment_leaf(HOLDERS[0], 4, c) == keccak(inner)


def test_an_inner_node_cannot_pose_as_a_commitment() -> None:
    """Leaves are double hashed: the parent of leaves 0 and 1 is a valid node of the tree, yet
    offered as a commitment with the rest of the proof it does not verify (no framing a member
    by proving a 'commitment' that is really an inner node)."""
    d, _ = _deal(t=2, m=2, holders=2)
    proof = d.proof(0, 0)
    assert len(proof) == 2
    parent = hash_pair(kc.commitment_leaf(HOLDERS[0], 0, d.commitments[0][0]), proof[0])
    assert verify_proof(proof[1:], d.root, parent)
    for holder, index in [(HOLDERS[0], 0), (HOLDERS[0], 1), (HOLDERS[1], 0)]:
        assert not kc.verify_commitment_proof(holder, index, parent, proof[1:], d.root)


@pytest.mark.parametrize(("t", "m", "message"), [(0, 3, "threshold must be in 1..3"), (4, 3, "threshold"),
                                                 (1, 0, "committee size"), (1, 256, "committee size")])
def test_deal_parameter_errors(t: int, m: int, message: str) -> None:
    with pytest.raises(CommitteeInputError, match=message):
        kc.deal(CHAIN, DS, 1, HOLDERS[:1], [os.urandom(32)], t, m, os.urandom)


def test_deal_input_errors() -> None:
    with pytest.raises(CommitteeInputError, match="one wrap key per fragment holder"):
        kc.deal(CHAIN, DS, 1, HOLDERS[:2], [os.urandom(32)], 1, 2, os.urandom)
    with pytest.raises(CommitteeInputError, match="distinct"):
        kc.deal(CHAIN, DS, 1, [HOLDERS[0], HOLDERS[0]], [os.urandom(32)] * 2, 1, 2, os.urandom)
    with pytest.raises(Exception, match="wrap key of fragment holder 0"):
        kc.deal(CHAIN, DS, 1, HOLDERS[:1], [b"short"], 1, 2, os.urandom)
    with pytest.raises(CommitteeInputError, match="not a hex address"):
        kc.deal(CHAIN, DS, 1, ["0xzz"], [os.urandom(32)], 1, 2, os.urandom)


def test_repr_hides_shares() -> None:
    d, keys = _deal()
    assert d.shares[0][0].hex() not in repr(d) and keys[0].hex() not in repr(d)
    v = _verify(d, 0, 0, _envelope(d, 0, 0))
    assert v.value.hex() not in repr(v)


# --- thresholds -------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(data=st.data(), t=st.integers(1, 5), extra=st.integers(0, 2))
def test_any_t_verified_shares_give_the_wrap_key(data: st.DataObject, t: int, extra: int) -> None:
    m = t + extra
    d, keys = _deal(t=t, m=m, holders=2)
    for j in range(2):
        chosen = data.draw(st.permutations(range(m)))[:data.draw(st.integers(t, m))]
        verified = [_verify(d, j, i, _envelope(d, j, i)) for i in chosen]
        assert kc.combine_shares(verified, t) == keys[j]
        if t > 1:
            with pytest.raises(CommitteeThresholdError, match=f"{t - 1} verified committee share"):
                kc.combine_shares(verified[: t - 1], t)


def test_t_minus_1_shares_are_independent_of_the_wrap_key() -> None:
    """t=2: for every wrap-key byte, member 0's share byte runs over all 256 values exactly once as
    the dealer's coefficient does, so its distribution (and its commitment's input) is the same
    whatever the key (structural, as in the Shamir tests; 16 key bytes keep it quick)."""
    for s in range(0, 256, 17):
        key = bytes([s]) + b"\0" * 31
        shares = set()
        for a in range(256):
            coeff = bytes([a]) + b"\0" * 31
            d = kc.deal(CHAIN, DS, 1, HOLDERS[:1], [key], 2, 2, lambda n, c=coeff: c[:n])
            shares.add(d.shares[0][0][0])
        assert shares == set(range(256)), f"key byte {s}"


# --- envelopes --------------------------------------------------------------------------


def test_envelope_roundtrip_and_layout() -> None:
    d, _ = _deal()
    blob = _envelope(d, 1, 2, request_id=2**200)
    assert len(blob) == ENVELOPE_LEN == 210 and blob[0] == 1
    env = decode_envelope(blob)
    assert (env.request_id, env.dataset_id, env.epoch, env.share) == (2**200, DS, 1, d.shares[1][2])
    assert "0x" + env.member.hex() == MEMBERS[2].address.lower() and encode_envelope(env) == blob
    for bad, message in [(b"", "empty"), (b"\x02" + blob[1:], "version 2"), (blob[:-1], "must be 210 bytes")]:
        with pytest.raises(CommitteeInputError, match=message):
            decode_envelope(bad)
    with pytest.raises(CommitteeInputError, match="not signed"):
        encode_envelope(env.signed(b""))


def test_digest_is_eip712_of_kos_share() -> None:
    """Independent reference: eth-account's EIP-712 encoder over the documented type."""
    d, _ = _deal()
    env = decode_envelope(_envelope(d, 0, 1, request_id=77))
    typed = encode_typed_data(full_message={
        "types": {"EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                                   {"name": "chainId", "type": "uint256"},
                                   {"name": "verifyingContract", "type": "address"}],
                  "KosShare": [{"name": "requestId", "type": "uint256"},
                               {"name": "datasetId", "type": "bytes32"},
                               {"name": "holder", "type": "address"}, {"name": "member", "type": "address"},
                               {"name": "epoch", "type": "uint64"}, {"name": "share", "type": "bytes32"}]},
        "primaryType": "KosShare",
        "domain": {"name": "ShardKey KOS committee", "version": "1", "chainId": CHAIN,
                   "verifyingContract": COMMITTEE},
        "message": {"requestId": 77, "datasetId": DS, "holder": HOLDERS[0], "member": MEMBERS[1].address,
                    "epoch": 1, "share": env.share}})
    reference = keccak(b"\x19" + typed.version + typed.header + typed.body)
    assert reference == envelope_digest(env, CHAIN, COMMITTEE)
    assert Account.recover_message(typed, signature=env.signature) == MEMBERS[1].address


@settings(max_examples=120, deadline=None)
@given(bit=st.integers(0, ENVELOPE_LEN * 8 - 1))
def test_a_flipped_bit_is_caught_and_names_the_member(bit: int) -> None:
    d, _ = _DEAL
    blob = bytearray(_envelope(d, 0, 1))
    blob[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(ShareRejectedError) as err:
        _verify(d, 0, 1, bytes(blob))
    assert err.value.member == MEMBERS[1].address and MEMBERS[1].address in str(err.value)


_DEAL = _deal()


def test_a_signed_wrong_share_is_a_commitment_mismatch_with_evidence() -> None:
    d, keys = _deal(t=2, m=3)
    wrong = bytes([d.shares[0][1][0] ^ 1]) + d.shares[0][1][1:]
    blob = _envelope(d, 0, 1, share=wrong)
    with pytest.raises(ShareCommitmentMismatch, match=f"member {MEMBERS[1].address}.*provable") as err:
        _verify(d, 0, 1, blob)
    assert isinstance(err.value.envelope, ShareEnvelope) and err.value.envelope.share == wrong
    # the holder waits for another member: two good shares still give the key
    good = [_verify(d, 0, i, _envelope(d, 0, i)) for i in (0, 2)]
    with pytest.raises(CommitteeThresholdError, match=f"bad shares from {MEMBERS[1].address}") as short:
        kc.combine_shares(good[:1], 2, rejected=[MEMBERS[1].address])
    assert short.value.bad_members == (MEMBERS[1].address,)
    assert kc.combine_shares(good, 2, rejected=[MEMBERS[1].address]) == keys[0]


def test_envelope_for_another_slot_or_signer_is_rejected() -> None:
    d, _ = _deal(t=2, m=3)
    blob = _envelope(d, 0, 1)
    other_request = kc.ShareSlot(**{**_slot(0, 1).__dict__, "request_id": 10})
    with pytest.raises(ShareEnvelopeError, match="another request"):
        kc.verify_share(blob, other_request, d.commitments[0][1], recover_signer)
    with pytest.raises(ShareEnvelopeError, match=f"member {MEMBERS[2].address}"):
        kc.verify_share(blob, _slot(0, 2), d.commitments[0][2], recover_signer)
    # signed by a non-member for member 1's slot
    env = decode_envelope(blob)
    forged = env.signed(MEMBERS[5].unsafe_sign_hash(envelope_digest(env, CHAIN, COMMITTEE)).signature)
    with pytest.raises(ShareSignatureError, match="does not recover the member"):
        _verify(d, 0, 1, encode_envelope(forged))
    # a signature for another committee contract (domain) does not count either
    other = env.signed(MEMBERS[1].unsafe_sign_hash(envelope_digest(env, CHAIN, "0x" + "dd" * 20)).signature)
    with pytest.raises(ShareSignatureError):
        _verify(d, 0, 1, encode_envelope(other))


def test_combine_rejects_duplicate_members() -> None:
    d, _ = _deal(t=2, m=3)
    v = _verify(d, 0, 0, _envelope(d, 0, 0))
    with pytest.raises(CommitteeInputError, match="two shares for member index 0"):
        kc.combine_shares([v, v], 2)


# --- HPKE info strings ------------------------------------------------------------------


def test_committee_info_layouts_and_binding() -> None:
    holder, member = bytes.fromhex(HOLDERS[0][2:]), bytes.fromhex(MEMBERS[0].address[2:])
    assert hpke.committee_share_info(CHAIN, DS, holder, member, 3) == (
        b"shardkey/kos-share/v1" + CHAIN.to_bytes(32, "big") + DS + holder + member + (3).to_bytes(8, "big"))
    assert hpke.committee_release_info(CHAIN, 5, DS, holder, member) == (
        b"shardkey/kos-release/v1" + CHAIN.to_bytes(32, "big") + (5).to_bytes(32, "big") + DS + holder
        + member)
    key = hpke.HpkePrivateKey.generate(os.urandom, hpke.HpkeSuiteId.X25519)
    info = hpke.committee_share_info(CHAIN, DS, holder, member, 3)
    blob = hpke.seal(key.public_key_bytes(), b"s" * 32, info)
    assert key.open(blob, info) == b"s" * 32
    with pytest.raises(HpkeDecryptionError):
        key.open(blob, hpke.committee_share_info(CHAIN, DS, holder, member, 4))
    with pytest.raises(Exception, match="member address"):
        hpke.committee_share_info(CHAIN, DS, holder, b"short", 3)
