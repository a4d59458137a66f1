"""The holder's side of a committee release, pure part (holder_agent.shares): judging each
member's sealed envelope with real HPKE keys and real signatures, collecting and combining
verified shares, and the Merkle proof a wrong share is proven with."""

from __future__ import annotations

import os

import pytest
from eth_account import Account
from eth_utils.crypto import keccak

from holder_agent.committee import REPORTED_KIND
from holder_agent.shares import ShareCollection, ShareContext, Verdict, judge
from shardkey.chain.committee import recover_signer, sign_envelope
from shardkey.crypto import committee as kc
from shardkey.crypto import hpke
from shardkey.crypto.committee_envelope import (
    UNSEALABLE_ENVELOPE,
    ShareEnvelope,
    encode_envelope,
)
from shardkey.crypto.errors import CommitteeInputError, CommitteeThresholdError

CHAIN = 31337
COMMITTEE = "0x" + "c0" * 20
DS = bytes.fromhex("22" * 32)
EPOCH = 3
REQUEST = 41
MEMBERS = [Account.from_key(keccak(b"kc-member" + bytes([i]))) for i in range(3)]
OUTSIDER = Account.from_key(keccak(b"not-a-member"))
HOLDERS = ["0x" + bytes([0xB0 + j]).hex() * 20 for j in range(3)]
J = 1  # this holder's position
HOLDER_KEY = hpke.HpkePrivateKey.generate(os.urandom, hpke.HpkeSuiteId.X25519)


@pytest.fixture(scope="module")
def dealt() -> tuple[kc.CommitteeDeal, list[bytes]]:
    keys = [os.urandom(32) for _ in HOLDERS]
    return kc.deal(CHAIN, DS, EPOCH, HOLDERS, keys, 2, len(MEMBERS), os.urandom), keys


def _ctx(d: kc.CommitteeDeal, commitments: tuple[bytes, ...] | None = None) -> ShareContext:
    return ShareContext(chain_id=CHAIN, committee=COMMITTEE, request_id=REQUEST, dataset_id=DS,
                        holders=tuple(HOLDERS), position=J, epoch=EPOCH,
                        members=tuple(m.address for m in MEMBERS), threshold=2,
                        commitments=tuple(d.flat_commitments()) if commitments is None else commitments)


def _info(member: str) -> bytes:
    return hpke.committee_release_info(CHAIN, REQUEST, DS, HOLDERS[J], member)


def _release(d: kc.CommitteeDeal, i: int, *, share: bytes | None = None, signer: Account | None = None,
             request_id: int = REQUEST, info: bytes | None = None) -> list[bytes]:
    """Member ``i``'s ``sealedEnvelopes``: one per holder, this holder's built as asked."""
    member = MEMBERS[i]
    value = d.shares[J][i] if share is None else share
    env = ShareEnvelope(request_id, DS, HOLDERS[J], member.address, EPOCH, value)
    if signer is None:
        blob = encode_envelope(sign_envelope(member, env, CHAIN, COMMITTEE))
    else:  # signed by someone else: the envelope still names the member
        own = ShareEnvelope(request_id, DS, HOLDERS[J], signer.address, EPOCH, env.share)
        forged = sign_envelope(signer, own, CHAIN, COMMITTEE)
        blob = encode_envelope(env.signed(forged.signature))
    sealed = hpke.seal(HOLDER_KEY.public_key_bytes(), blob, _info(member.address) if info is None else info)
    return [b"\x01" * 40, sealed, b"\x02" * 40][: len(HOLDERS)]


def _judge(d: kc.CommitteeDeal, member: str, envelopes: list[bytes]):
    return judge(_ctx(d), member, envelopes, HOLDER_KEY.open, _info, recover_signer)


def test_two_honest_releases_combine_to_the_wrap_key(dealt) -> None:
    d, keys = dealt
    collection = ShareCollection(threshold=2)
    first = _judge(d, MEMBERS[2].address, _release(d, 2))
    assert first.verdict is Verdict.VERIFIED and first.member_index == 2
    collection.add(first)
    assert not collection.ready()
    with pytest.raises(CommitteeThresholdError, match="wait for 1 more member"):
        collection.wrap_key()
    collection.add(_judge(d, MEMBERS[0].address, _release(d, 0)))
    assert collection.ready()
    assert bytes(collection.wrap_key()) == keys[J]
    assert d.shares[J][2].hex() not in repr(first)


def test_a_signed_wrong_share_is_provable_and_the_other_members_still_combine(dealt) -> None:
    d, keys = dealt
    wrong = bytearray(d.shares[J][1])
    wrong[0] ^= 1
    verdict = _judge(d, MEMBERS[1].address, _release(d, 1, share=bytes(wrong)))
    assert verdict.verdict is Verdict.WRONG_SHARE and verdict.envelope is not None
    assert verdict.envelope.share == bytes(wrong)
    ctx = _ctx(d)
    commitment, proof = ctx.commitment(1), ctx.proof(1)
    assert commitment == d.commitments[J][1]
    # what proveWrongShare checks: the commitment is c[J][1] under the deal's root, the share is not it
    assert kc.verify_commitment_proof(HOLDERS[J], 1, commitment, proof, d.root)
    assert not kc.verify_commitment_proof(HOLDERS[J], 0, commitment, proof, d.root)
    assert kc.share_commitment(CHAIN, DS, HOLDERS[J], 1, EPOCH, bytes(wrong)) != commitment

    collection = ShareCollection(threshold=2)
    collection.add(verdict)
    collection.add(_judge(d, MEMBERS[0].address, _release(d, 0)))
    with pytest.raises(CommitteeThresholdError) as short:
        collection.wrap_key()
    assert short.value.bad_members == (MEMBERS[1].address,)
    collection.add(_judge(d, MEMBERS[2].address, _release(d, 2)))
    assert bytes(collection.wrap_key()) == keys[J]
    assert collection.rejected == [MEMBERS[1].address]


def test_unreadable_envelopes_are_claims(dealt) -> None:
    d, _ = dealt
    garbage = _judge(d, MEMBERS[0].address, [b"x", b"not an hpke blob", b"y"])
    assert garbage.verdict is Verdict.UNREADABLE and "does not open" in garbage.detail
    # sealed to this holder but under another member's info: does not open either
    other_info = _release(d, 0, info=_info(MEMBERS[1].address))
    assert _judge(d, MEMBERS[0].address, other_info).verdict is Verdict.UNREADABLE
    # opens, but is for another request
    stale = _judge(d, MEMBERS[0].address, _release(d, 0, request_id=REQUEST + 1))
    assert stale.verdict is Verdict.UNREADABLE and "another request" in stale.detail
    # the release lists no envelope for this holder's position
    short = _judge(d, MEMBERS[0].address, _release(d, 0)[:1])
    assert short.verdict is Verdict.UNREADABLE and "position 1" in short.detail


def test_the_placeholder_for_an_unsealable_key_is_no_claim_against_the_member(dealt) -> None:
    d, _ = dealt
    judged = _judge(d, MEMBERS[0].address, [b"x", UNSEALABLE_ENVELOPE, b"y"])
    assert judged.verdict is Verdict.UNSEALED and "registered HPKE key" in judged.detail
    assert judged.verdict not in REPORTED_KIND  # the holder's own key is at fault


def test_a_signature_by_someone_else_is_a_claim_and_a_stranger_is_no_member(dealt) -> None:
    d, _ = dealt
    forged = _judge(d, MEMBERS[0].address, _release(d, 0, signer=OUTSIDER))
    assert forged.verdict is Verdict.BAD_SIGNATURE and forged.envelope is None
    stranger = _judge(d, OUTSIDER.address, _release(d, 0))
    assert stranger.verdict is Verdict.NOT_MEMBER and stranger.member_index is None


def test_collection_counts_one_judgement_per_member_and_forgets(dealt) -> None:
    d, _ = dealt
    collection = ShareCollection(threshold=2)
    honest = _judge(d, MEMBERS[0].address, _release(d, 0))
    collection.add(honest)
    collection.add(honest)
    assert collection.seen(MEMBERS[0].address.lower()) and len(collection.verified) == 1
    collection.add(_judge(d, MEMBERS[0].address, [b"", b"junk", b""]))  # a second look does not replace it
    assert len(collection.verified) == 1 and collection.rejected == []
    collection.wipe()
    assert not collection.seen(MEMBERS[0].address) and collection.verified == []


def test_context_refuses_a_deal_list_of_the_wrong_size(dealt) -> None:
    d, _ = dealt
    with pytest.raises(CommitteeInputError, match="3 fragment holders x 3 members = 9 expected"):
        _ctx(d, tuple(d.flat_commitments()[:-1]))
    with pytest.raises(CommitteeInputError, match="holder position"):
        ShareContext(CHAIN, COMMITTEE, REQUEST, DS, tuple(HOLDERS), 3, EPOCH,
                     tuple(m.address for m in MEMBERS), 2, tuple(d.flat_commitments()))


