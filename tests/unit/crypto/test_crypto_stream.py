"""STREAM shard encryption: round trips and rejection of every kind of tampering."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shardkey.crypto import stream
from shardkey.crypto.errors import (
    CryptoInputError,
    ShardDecryptionError,
    ShardHeaderError,
    StreamStateError,
)
from shardkey.errors import RestoreError

KEY = bytes(range(32))
DS = bytes.fromhex("aa" * 32)


def rng(seed: int = 0) -> stream.Rng:
    return random.Random(seed).randbytes


def pieces(data: bytes, r: random.Random) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        n = r.randint(0, 50)
        out.append(data[pos : pos + n])
        pos += n
    return out


@settings(max_examples=80, deadline=None)
@given(
    plaintext=st.binary(min_size=0, max_size=600),
    chunk_size=st.integers(1, 70),
    seed=st.integers(0, 2**32),
)
def test_roundtrip_streaming_matches_one_shot(plaintext: bytes, chunk_size: int, seed: int) -> None:
    r = random.Random(seed)
    ct = stream.encrypt_shard(KEY, DS, 5, plaintext, rng(seed), chunk_size)
    assert len(ct) == stream.ciphertext_length(len(plaintext), chunk_size)
    enc = stream.ShardEncryptor(KEY, DS, 5, rng(seed), chunk_size)
    streamed = b"".join(enc.update(p) for p in pieces(plaintext, r)) + enc.finalize()
    assert streamed == ct
    assert enc.ciphertext_sha256 == hashlib.sha256(ct).digest()
    dec = stream.ShardDecryptor(KEY, DS, 5)
    got = b"".join(dec.update(p) for p in pieces(ct, r)) + dec.finalize()
    assert got == plaintext
    assert dec.ciphertext_sha256 == hashlib.sha256(ct).digest()
    assert stream.decrypt_shard(KEY, DS, 5, ct) == plaintext


@pytest.mark.parametrize(("length", "chunks"), [(0, 1), (1, 1), (16, 1), (17, 2), (32, 2), (33, 3)])
def test_chunk_layout(length: int, chunks: int) -> None:
    ct = stream.encrypt_shard(KEY, DS, 0, bytes(length), rng(), chunk_size=16)
    assert stream.chunk_count(length, 16) == chunks
    assert len(ct) == stream.HEADER_LEN + length + 16 * chunks
    assert ct[:4] == b"SKS2"
    assert ct[4:8] == (16).to_bytes(4, "big")
    assert ct[8:15] == rng()(7)


def test_wire_format_of_first_and_last_chunk() -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    pt = b"A" * 16 + b"tail"
    ct = stream.encrypt_shard(KEY, DS, 258, pt, rng(3), chunk_size=16)
    prefix = ct[8:15]
    aad = b"shardkey/shard/v2" + DS + (258).to_bytes(4, "big") + (16).to_bytes(4, "big")
    c0 = AESGCM(KEY).decrypt(prefix + b"\x00\x00\x00\x00\x00", ct[15 : 15 + 32], aad)
    c1 = AESGCM(KEY).decrypt(prefix + b"\x00\x00\x00\x01\x01", ct[15 + 32 :], aad)
    assert c0 + c1 == pt
    assert stream.DEFAULT_CHUNK_SIZE == 65536


SMALL_PT = bytes(range(40))  # 3 chunks of 16, 16, 8


def small_ct() -> bytes:
    return stream.encrypt_shard(KEY, DS, 9, SMALL_PT, rng(1), chunk_size=16)


def test_every_single_bit_flip_is_rejected() -> None:
    ct = small_ct()
    for byte in range(len(ct)):
        for bit in range(8):
            bad = bytearray(ct)
            bad[byte] ^= 1 << bit
            with pytest.raises(ShardDecryptionError):
                stream.decrypt_shard(KEY, DS, 9, bytes(bad))


def test_every_truncation_is_rejected() -> None:
    ct = small_ct()
    for n in range(len(ct)):
        with pytest.raises(ShardDecryptionError):
            stream.decrypt_shard(KEY, DS, 9, ct[:n])


def test_truncation_at_chunk_boundary_names_final_chunk() -> None:
    ct = small_ct()
    with pytest.raises(ShardDecryptionError, match="final chunk 1 failed") as info:
        stream.decrypt_shard(KEY, DS, 9, ct[: 15 + 2 * 32])
    assert info.value.chunk == 1
    assert info.value.shard_index == 9
    assert isinstance(info.value, RestoreError)


@pytest.mark.parametrize("extra", [b"\x00", bytes(16), bytes(40)])
def test_extension_is_rejected(extra: bytes) -> None:
    with pytest.raises(ShardDecryptionError):
        stream.decrypt_shard(KEY, DS, 9, small_ct() + extra)


def test_appending_a_copy_of_a_chunk_is_rejected() -> None:
    ct = small_ct()
    with pytest.raises(ShardDecryptionError, match="chunk 2"):
        stream.decrypt_shard(KEY, DS, 9, ct + ct[15:47])


def test_chunk_swap_and_reorder_are_rejected() -> None:
    ct = small_ct()
    h, c0, c1, c2 = ct[:15], ct[15:47], ct[47:79], ct[79:]
    with pytest.raises(ShardDecryptionError, match="chunk 0 failed") as info:
        stream.decrypt_shard(KEY, DS, 9, h + c1 + c0 + c2)
    assert info.value.chunk == 0
    with pytest.raises(ShardDecryptionError):
        stream.decrypt_shard(KEY, DS, 9, h + c0 + c0 + c2)
    with pytest.raises(ShardDecryptionError, match="chunk 1"):
        stream.decrypt_shard(KEY, DS, 9, h + c0 + c2)  # dropped middle chunk


def test_swapping_full_chunks_between_equal_sized_shards_is_rejected() -> None:
    other = stream.encrypt_shard(KEY, DS, 10, SMALL_PT, rng(1), chunk_size=16)
    with pytest.raises(ShardDecryptionError, match="shard 9: chunk 0"):
        stream.decrypt_shard(KEY, DS, 9, other)


def test_header_tampering() -> None:
    ct = small_ct()
    with pytest.raises(ShardHeaderError, match="bad magic"):  # a format v1 shard is refused
        stream.decrypt_shard(KEY, DS, 9, b"SKS1" + ct[4:])
    with pytest.raises(ShardHeaderError, match="chunk_size 0"):
        stream.decrypt_shard(KEY, DS, 9, ct[:4] + bytes(4) + ct[8:])
    with pytest.raises(ShardHeaderError, match=r"outside 1\.\.1024"):
        bad = ct[:4] + (2000).to_bytes(4, "big") + ct[8:]
        stream.decrypt_shard(KEY, DS, 9, bad, max_chunk_size=1024)
    # a different but valid chunk size fails authentication of chunk 0 (bound in the AAD)
    with pytest.raises(ShardDecryptionError, match="chunk 0"):
        stream.decrypt_shard(KEY, DS, 9, ct[:4] + (8).to_bytes(4, "big") + ct[8:])
    with pytest.raises(ShardHeaderError, match="truncated inside"):
        stream.decrypt_shard(KEY, DS, 9, ct[:10])


@pytest.mark.parametrize(
    ("key", "ds", "index"),
    [(bytes(32), DS, 9), (KEY, bytes(32), 9), (KEY, DS, 8)],
)
def test_wrong_context_is_rejected(key: bytes, ds: bytes, index: int) -> None:
    with pytest.raises(ShardDecryptionError, match="chunk 0"):
        stream.decrypt_shard(key, ds, index, small_ct())


def test_streaming_decryptor_never_releases_unauthenticated_plaintext() -> None:
    ct = bytearray(small_ct())
    ct[-1] ^= 1  # corrupt the final chunk
    dec = stream.ShardDecryptor(KEY, DS, 9)
    released = dec.update(bytes(ct))
    assert released == SMALL_PT[:32]  # the two authenticated full chunks only
    with pytest.raises(ShardDecryptionError, match="final chunk 2"):
        dec.finalize()
    with pytest.raises(StreamStateError):
        dec.update(b"")


def test_error_messages_do_not_leak_secrets() -> None:
    secret_pt = b"TOP-SECRET-PLAINTEXT" * 2
    ct = bytearray(stream.encrypt_shard(KEY, DS, 1, secret_pt, rng(), 16))
    ct[20] ^= 4
    with pytest.raises(ShardDecryptionError) as info:
        stream.decrypt_shard(KEY, DS, 1, bytes(ct))
    text = str(info.value)
    assert KEY.hex() not in text
    assert "SECRET" not in text


def test_state_and_input_errors() -> None:
    enc = stream.ShardEncryptor(KEY, DS, 0, rng())
    with pytest.raises(StreamStateError):
        _ = enc.ciphertext_sha256
    enc.finalize()
    with pytest.raises(StreamStateError):
        enc.update(b"x")
    with pytest.raises(StreamStateError):
        enc.finalize()
    with pytest.raises(CryptoInputError, match="shard key must be 32 bytes"):
        stream.ShardEncryptor(KEY[:16], DS, 0, rng())
    with pytest.raises(CryptoInputError, match="dataset_id"):
        stream.ShardEncryptor(KEY, DS[:31], 0, rng())
    with pytest.raises(CryptoInputError, match="shard_index"):
        stream.ShardEncryptor(KEY, DS, 2**32, rng())
    with pytest.raises(CryptoInputError, match="chunk_size"):
        stream.ShardEncryptor(KEY, DS, 0, rng(), chunk_size=0)
    with pytest.raises(CryptoInputError, match="plaintext length"):
        stream.ciphertext_length(-1)


def _streamed_error(ct: bytes, r: random.Random) -> str:
    dec = stream.ShardDecryptor(KEY, DS, 9)
    try:
        for p in pieces(ct, r):
            dec.update(p)
        dec.finalize()
    except ShardDecryptionError as exc:
        return f"{type(exc).__name__}: {exc} @{exc.chunk}"
    return "accepted"


def _one_shot_error(ct: bytes) -> str:
    try:
        stream.decrypt_shard(KEY, DS, 9, ct)
    except ShardDecryptionError as exc:
        return f"{type(exc).__name__}: {exc} @{exc.chunk}"
    return "accepted"


@settings(max_examples=150, deadline=None)
@given(cut=st.integers(0, 200), flip=st.integers(-1, 200), extra=st.binary(max_size=40),
       seed=st.integers(0, 99))
def test_one_shot_decrypt_refuses_exactly_as_streaming_does(cut: int, flip: int, extra: bytes,
                                                           seed: int) -> None:
    """decrypt_shard's fast path gives the streaming decryptor's verdict and error, chunk included."""
    ct = bytearray(small_ct())
    if 0 <= flip < len(ct):
        ct[flip] ^= 0x10
    mangled = bytes(ct[:cut]) + extra
    assert _one_shot_error(mangled) == _streamed_error(mangled, random.Random(seed))


def test_seal_shard_returns_the_ciphertext_and_its_hash() -> None:
    ct, digest = stream.seal_shard(KEY, DS, 9, memoryview(SMALL_PT), rng(1), chunk_size=16)
    assert ct == small_ct() and digest == hashlib.sha256(ct).digest()
