"""The signed share envelope a committee member sends a fragment holder, the EIP-712
digest the member signs (recomputed by ``KosCommittee.shareDigest``), and the committee
marker that makes a dataset a committee dataset.

Committee marker (12 bytes): ``b"SKC1" | committee_epoch:u64be``. A fragment epoch whose
sealed wrap key slot (``DatasetRegistered`` / ``FragmentsRedealt``) is the marker of one
committee epoch *for every holder* is dealt to that committee epoch; any other fragment epoch
is one no KOS serves (the owner's client writes only markers). :func:`dealt_committee_epoch`
is that rule, in this one place.

Layout v1 (docs/ARCHITECTURE.md, 210 bytes, big-endian)::

    version:u8 (=1) | request_id:u256 | dataset_id:32 | holder:20 | member:20 | epoch:u64
      | share:32 | signature:65 (r | s | v)

Digest (EIP-712, domain ``name="ShardKey KOS committee"``, ``version="1"``, ``chainId``,
``verifyingContract`` = the KosCommittee)::

    KosShare(uint256 requestId,bytes32 datasetId,address holder,address member,uint64 epoch,bytes32 share)
    digest = keccak256(0x1901 | domainSeparator | keccak256(abi.encode(TYPEHASH, fields...)))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_hash.auto import keccak

from shardkey.crypto.encoding import require_bytes, u8, u64be, u256be
from shardkey.crypto.errors import CommitteeInputError

ENVELOPE_VERSION = 1
SIGNATURE_LEN = 65
ENVELOPE_LEN = 1 + 32 + 32 + 20 + 20 + 8 + 32 + SIGNATURE_LEN
DOMAIN_NAME = "ShardKey KOS committee"
DOMAIN_VERSION = "1"
DOMAIN_TYPEHASH = keccak(b"EIP712Domain(string name,string version,uint256 chainId,"
                         b"address verifyingContract)")
MARKER_MAGIC = b"SKC1"
# What a member releases to a fragment holder whose registered HPKE key cannot be sealed to: the
# contract takes no empty envelope, the holder could open nothing anyway, and the member's
# envelopes for every other holder still go out (one broken key must not stall the request).
UNSEALABLE_ENVELOPE = b"\x00"
MARKER_LEN = len(MARKER_MAGIC) + 8
SHARE_TYPEHASH = keccak(b"KosShare(uint256 requestId,bytes32 datasetId,address holder,address member,"
                        b"uint64 epoch,bytes32 share)")


def address_bytes(value: bytes | str, name: str) -> bytes:
    """A 20-byte address from bytes or a (0x-)hex string."""
    if isinstance(value, str):
        text = value[2:] if value[:2].lower() == "0x" else value
        try:
            value = bytes.fromhex(text)
        except ValueError:
            raise CommitteeInputError(f"{name} {value!r} is not a hex address") from None
    return require_bytes(value, 20, name, CommitteeInputError)


def address_word(value: bytes | str, name: str) -> bytes:
    """An address as an ``abi.encode`` word (12 zero bytes, then the 20)."""
    return b"\0" * 12 + address_bytes(value, name)


def u64_word(value: int, name: str) -> bytes:
    """A uint64 as an ``abi.encode`` word."""
    return b"\0" * 24 + u64be(value, name)


@dataclass(frozen=True)
class ShareEnvelope:
    """Member ``member``'s share of fragment holder ``holder``'s wrap key, for one request.

    ``share`` is SECRET until it is proven wrong; ``signature`` is empty before signing.
    """

    request_id: int
    dataset_id: bytes
    holder: bytes
    member: bytes
    epoch: int
    share: bytes
    signature: bytes = b""

    def __post_init__(self) -> None:
        u256be(self.request_id, "request_id")
        require_bytes(self.dataset_id, 32, "dataset_id", CommitteeInputError)
        object.__setattr__(self, "holder", address_bytes(self.holder, "holder"))
        object.__setattr__(self, "member", address_bytes(self.member, "member"))
        u64be(self.epoch, "epoch")
        require_bytes(self.share, 32, "share", CommitteeInputError)
        if self.signature:
            require_bytes(self.signature, SIGNATURE_LEN, "signature", CommitteeInputError)

    def signed(self, signature: bytes) -> ShareEnvelope:
        """This envelope with ``signature``."""
        return ShareEnvelope(self.request_id, self.dataset_id, self.holder, self.member, self.epoch,
                             self.share, bytes(signature))

    def as_tuple(self) -> tuple[int, bytes, str, str, int, bytes]:
        """The ``ShareEnvelope`` struct tuple of ``KosCommittee`` (signature apart)."""
        return (self.request_id, self.dataset_id, "0x" + self.holder.hex(), "0x" + self.member.hex(),
                self.epoch, self.share)

    def __repr__(self) -> str:
        return (f"ShareEnvelope(request={self.request_id}, dataset=0x{self.dataset_id.hex()[:16]}.., "
                f"holder=0x{self.holder.hex()}, member=0x{self.member.hex()}, epoch={self.epoch}, "
                "share=<secret>)")


def encode_envelope(env: ShareEnvelope) -> bytes:
    """The v1 wire form (a signed envelope only)."""
    if not env.signature:
        raise CommitteeInputError("share envelope is not signed")
    return (u8(ENVELOPE_VERSION) + u256be(env.request_id) + env.dataset_id + env.holder + env.member
            + u64be(env.epoch, "epoch") + env.share + env.signature)


def decode_envelope(data: bytes) -> ShareEnvelope:
    """Parse the v1 wire form, naming what is wrong."""
    data = bytes(data)
    if not data:
        raise CommitteeInputError("share envelope is empty")
    if data[0] != ENVELOPE_VERSION:
        raise CommitteeInputError(f"share envelope version {data[0]} is not {ENVELOPE_VERSION}")
    if len(data) != ENVELOPE_LEN:
        raise CommitteeInputError(f"share envelope must be {ENVELOPE_LEN} bytes, got {len(data)}")
    return ShareEnvelope(request_id=int.from_bytes(data[1:33], "big"), dataset_id=data[33:65],
                         holder=data[65:85], member=data[85:105], epoch=int.from_bytes(data[105:113], "big"),
                         share=data[113:145], signature=data[145:])


def domain_separator(chain_id: int, committee: bytes | str) -> bytes:
    """EIP-712 domain separator of the KosCommittee at ``committee`` on ``chain_id``."""
    return keccak(DOMAIN_TYPEHASH + keccak(DOMAIN_NAME.encode()) + keccak(DOMAIN_VERSION.encode())
                  + u256be(chain_id, "chain_id") + address_word(committee, "committee"))


def envelope_digest(env: ShareEnvelope, chain_id: int, committee: bytes | str) -> bytes:
    """The 32-byte EIP-712 digest the member signs (``KosCommittee.shareDigest``)."""
    struct = keccak(SHARE_TYPEHASH + u256be(env.request_id) + env.dataset_id
                    + address_word(env.holder, "holder") + address_word(env.member, "member")
                    + u64_word(env.epoch, "epoch") + env.share)
    return keccak(b"\x19\x01" + domain_separator(chain_id, committee) + struct)


def committee_marker(epoch: int) -> bytes:
    """The 12-byte committee marker of committee epoch ``epoch`` (>= 1)."""
    if not isinstance(epoch, int) or not 0 < epoch < 1 << 64:
        raise CommitteeInputError(f"committee epoch must be at least 1 and fit in uint64, got {epoch!r}")
    return MARKER_MAGIC + u64be(epoch, "committee epoch")


def parse_committee_marker(blob: bytes) -> int | None:
    """The committee epoch of a marker; None when ``blob`` is not one (a sealed wrap key)."""
    blob = bytes(blob)
    if len(blob) != MARKER_LEN or not blob.startswith(MARKER_MAGIC):
        return None
    epoch = int.from_bytes(blob[len(MARKER_MAGIC):], "big")
    return epoch if epoch >= 1 else None


def dealt_committee_epoch(sealed_wrap_keys: Sequence[bytes]) -> int | None:
    """The committee epoch a fragment epoch is dealt to, or None when it is not a committee deal
    (no KOS serves it): every slot must be the marker of the same committee epoch."""
    epochs = {parse_committee_marker(blob) for blob in sealed_wrap_keys}
    if len(epochs) != 1:
        return None
    return epochs.pop()
