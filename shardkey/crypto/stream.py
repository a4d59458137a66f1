"""STREAM encryption of shards with AES-256-GCM (see docs/ARCHITECTURE.md).

Wire format::

    header  = b"SKS2" | chunk_size:u32be | nonce_prefix:7            (15 bytes)
    chunk_c = AESGCM(key).encrypt(nonce_prefix | c:u32be | last:u8, plaintext_c, aad)
    aad     = b"shardkey/shard/v2" | dataset_id:32 | shard_index:u32be | chunk_size:u32be

Shard format v2 (:mod:`shardkey.crypto.stripe`) seals only data shards this way; the
version is in both the magic and the AAD, so a v1 shard never authenticates as v2.

Every chunk but the last holds exactly ``chunk_size`` plaintext bytes; the last holds
``0..chunk_size`` bytes (an empty plaintext is one empty final chunk; a plaintext whose
length is a multiple of ``chunk_size`` ends with a full final chunk).

The streaming classes keep at most one chunk buffered. :class:`ShardDecryptor` only
releases authenticated chunks, but truncation is detected at :meth:`finalize`: output
must not be treated as complete until ``finalize()`` returned.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shardkey.crypto.encoding import U32_MAX, require_bytes, u32be
from shardkey.crypto.errors import (
    CryptoInputError,
    ShardDecryptionError,
    ShardHeaderError,
    StreamStateError,
)

MAGIC = b"SKS2"
NONCE_PREFIX_LEN = 7
HEADER_LEN = len(MAGIC) + 4 + NONCE_PREFIX_LEN  # 15
TAG_LEN = 16
KEY_LEN = 32
DEFAULT_CHUNK_SIZE = 64 * 1024
MAX_CHUNK_SIZE = 16 * 1024 * 1024
AAD_PREFIX = b"shardkey/shard/v2"

Rng = Callable[[int], bytes]


def _check_chunk_size(chunk_size: int) -> None:
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise CryptoInputError(f"chunk_size must be between 1 and {MAX_CHUNK_SIZE}, got {chunk_size}")


def shard_aad(dataset_id: bytes, shard_index: int, chunk_size: int) -> bytes:
    """Return the associated data bound to every chunk of one shard."""
    return (
        AAD_PREFIX
        + require_bytes(dataset_id, 32, "dataset_id")
        + u32be(shard_index, "shard_index")
        + u32be(chunk_size, "chunk_size")
    )


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    return prefix + counter.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def chunk_count(plaintext_length: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> int:
    """Number of STREAM chunks for a plaintext of ``plaintext_length`` bytes (>= 1)."""
    _check_chunk_size(chunk_size)
    if plaintext_length < 0:
        raise CryptoInputError(f"plaintext length must be >= 0, got {plaintext_length}")
    return max(1, -(-plaintext_length // chunk_size))


def ciphertext_length(plaintext_length: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> int:
    """Exact ciphertext length (header included) for a plaintext length."""
    return HEADER_LEN + plaintext_length + TAG_LEN * chunk_count(plaintext_length, chunk_size)


class ShardEncryptor:
    """Incremental STREAM encryptor for one shard.

    ``update(data)`` returns the ciphertext bytes ready so far (the header first);
    ``finalize()`` returns the final chunk. Once finalized, :attr:`ciphertext_sha256`
    holds SHA-256 of the whole ciphertext (the shard's Merkle leaf input).
    """

    def __init__(
        self,
        key: bytes,
        dataset_id: bytes,
        shard_index: int,
        rng: Rng,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        _check_chunk_size(chunk_size)
        self._aead = AESGCM(require_bytes(key, KEY_LEN, "shard key"))
        self._aad = shard_aad(dataset_id, shard_index, chunk_size)
        self._prefix = require_bytes(rng(NONCE_PREFIX_LEN), NONCE_PREFIX_LEN, "rng output")
        self._chunk_size = chunk_size
        self._shard_index = shard_index
        self._buf = bytearray()
        self._counter = 0
        self._header_sent = False
        self._done = False
        self._hash = hashlib.sha256()
        self._digest: bytes | None = None

    def _emit(self, out: bytearray) -> bytes:
        self._hash.update(out)
        return bytes(out)

    def _seal(self, plaintext: bytes | bytearray, last: bool) -> bytes:
        if self._counter > U32_MAX:
            raise CryptoInputError(f"shard {self._shard_index}: too many chunks for STREAM")
        ct = self._aead.encrypt(_nonce(self._prefix, self._counter, last), plaintext, self._aad)
        self._counter += 1
        return ct

    def _start(self, out: bytearray) -> None:
        if not self._header_sent:
            out += MAGIC + u32be(self._chunk_size) + self._prefix
            self._header_sent = True

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        """Feed plaintext; return any ciphertext completed by it."""
        if self._done:
            raise StreamStateError("update() after finalize() on a ShardEncryptor")
        out = bytearray()
        self._start(out)
        self._buf += data
        cs = self._chunk_size
        # Keep the last (possibly full) chunk back: only finalize() knows it is last.
        pos = 0
        while len(self._buf) - pos > cs:
            out += self._seal(bytes(self._buf[pos : pos + cs]), last=False)
            pos += cs
        del self._buf[:pos]
        return self._emit(out)

    def finalize(self) -> bytes:
        """Encrypt the final chunk and return the remaining ciphertext."""
        if self._done:
            raise StreamStateError("finalize() called twice on a ShardEncryptor")
        out = bytearray()
        self._start(out)
        out += self._seal(bytes(self._buf), last=True)
        self._buf.clear()
        self._done = True
        result = self._emit(out)
        self._digest = self._hash.digest()
        return result

    @property
    def ciphertext_sha256(self) -> bytes:
        """SHA-256 of the complete ciphertext; available after :meth:`finalize`."""
        if self._digest is None:
            raise StreamStateError("ciphertext_sha256 is only known after finalize()")
        return self._digest


class ShardDecryptor:
    """Incremental STREAM decryptor for one shard.

    ``update(data)`` returns authenticated plaintext of every complete non-final chunk;
    ``finalize()`` authenticates the final chunk and returns its plaintext. Any failure
    raises :class:`ShardDecryptionError` naming the chunk, and the object refuses
    further use. ``max_chunk_size`` bounds the memory a hostile header can demand.
    """

    def __init__(
        self,
        key: bytes,
        dataset_id: bytes,
        shard_index: int,
        max_chunk_size: int = MAX_CHUNK_SIZE,
    ) -> None:
        self._aead = AESGCM(require_bytes(key, KEY_LEN, "shard key"))
        self._dataset_id = require_bytes(dataset_id, 32, "dataset_id")
        u32be(shard_index, "shard_index")
        self._shard_index = shard_index
        self._max_chunk_size = max_chunk_size
        self._aad = b""
        self._prefix = b""
        self._chunk_size = 0
        self._buf = bytearray()
        self._counter = 0
        self._failed = False
        self._done = False
        self._hash = hashlib.sha256()

    def _fail(self, exc: ShardDecryptionError) -> ShardDecryptionError:
        self._failed = True
        self._buf.clear()
        return exc

    def _check_usable(self) -> None:
        if self._failed:
            raise StreamStateError("ShardDecryptor used after a decryption failure")
        if self._done:
            raise StreamStateError("ShardDecryptor used after finalize()")

    def _parse_header(self) -> None:
        header = bytes(self._buf[:HEADER_LEN])
        i = self._shard_index
        if header[:4] != MAGIC:
            raise self._fail(ShardHeaderError(f"shard {i}: bad magic, not a SKS1 shard", shard_index=i))
        chunk_size = int.from_bytes(header[4:8], "big")
        if not 1 <= chunk_size <= self._max_chunk_size:
            raise self._fail(
                ShardHeaderError(
                    f"shard {i}: header chunk_size {chunk_size} outside 1..{self._max_chunk_size}",
                    shard_index=i,
                )
            )
        self._chunk_size = chunk_size
        self._prefix = header[8:HEADER_LEN]
        self._aad = shard_aad(self._dataset_id, i, chunk_size)
        del self._buf[:HEADER_LEN]

    def _next_counter(self) -> int:
        c = self._counter
        if c > U32_MAX:
            raise self._fail(
                ShardDecryptionError(
                    f"shard {self._shard_index}: chunk counter overflow at chunk {c}",
                    shard_index=self._shard_index,
                    chunk=c,
                )
            )
        return c

    def _auth_failure(self, c: int, last: bool) -> ShardDecryptionError:
        kind = "final " if last else ""
        return self._fail(
            ShardDecryptionError(
                f"shard {self._shard_index}: {kind}chunk {c} failed authentication "
                "(wrong key, or ciphertext tampered, reordered, truncated or extended)",
                shard_index=self._shard_index,
                chunk=c,
            )
        )

    def _open(self, data: bytes, last: bool) -> bytes:
        c = self._next_counter()
        try:
            pt = self._aead.decrypt(_nonce(self._prefix, c, last), data, self._aad)
        except InvalidTag:
            raise self._auth_failure(c, last) from None
        self._counter += 1
        return pt

    @property
    def chunk_size(self) -> int:
        """The header's chunk size (0 until the header was read)."""
        return self._chunk_size

    def open_into(self, data: memoryview, last: bool, out: memoryview) -> None:
        """Authenticate the next chunk into ``out`` (for :func:`decrypt_shard`); marks the
        decryptor done after the last one. Same errors as :meth:`update`/:meth:`finalize`."""
        self._check_usable()
        c = self._next_counter()
        try:
            self._aead.decrypt_into(_nonce(self._prefix, c, last), data, self._aad, out)
        except InvalidTag:
            raise self._auth_failure(c, last) from None
        self._counter += 1
        self._done = last

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        """Feed ciphertext; return plaintext of chunks known not to be the last."""
        self._check_usable()
        self._hash.update(data)
        self._buf += data
        if not self._chunk_size:
            if len(self._buf) < HEADER_LEN:
                return b""
            self._parse_header()
        full = self._chunk_size + TAG_LEN
        out = bytearray()
        pos = 0
        while len(self._buf) - pos > full:
            out += self._open(bytes(self._buf[pos : pos + full]), last=False)
            pos += full
        del self._buf[:pos]
        return bytes(out)

    def finalize(self) -> bytes:
        """Authenticate and return the final chunk; raise if the stream is incomplete."""
        self._check_usable()
        i = self._shard_index
        if not self._chunk_size:
            raise self._fail(
                ShardHeaderError(
                    f"shard {i}: ciphertext truncated inside the {HEADER_LEN}-byte header "
                    f"({len(self._buf)} bytes)",
                    shard_index=i,
                )
            )
        if len(self._buf) < TAG_LEN:
            raise self._fail(
                ShardDecryptionError(
                    f"shard {i}: ciphertext truncated, final chunk {self._counter} has "
                    f"{len(self._buf)} bytes (< {TAG_LEN}-byte tag)",
                    shard_index=i,
                    chunk=self._counter,
                )
            )
        pt = self._open(bytes(self._buf), last=True)
        self._buf.clear()
        self._done = True
        return pt

    @property
    def ciphertext_sha256(self) -> bytes:
        """SHA-256 of all ciphertext fed so far (the whole shard after finalize)."""
        return self._hash.copy().digest()


def seal_shard(
    key: bytes,
    dataset_id: bytes,
    shard_index: int,
    plaintext: bytes | bytearray | memoryview,
    rng: Rng,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> tuple[bytes, bytes]:
    """Encrypt a whole shard in one call; return ``(ciphertext, sha256(ciphertext))``.

    Byte-for-byte what :class:`ShardEncryptor` produces (:func:`seal_shard_into` a new buffer).
    """
    out = bytearray(ciphertext_length(len(memoryview(plaintext).cast("B")), chunk_size))
    digest = seal_shard_into(key, dataset_id, shard_index, plaintext, rng, out, chunk_size)
    return bytes(out), digest


def seal_shard_into(
    key: bytes,
    dataset_id: bytes,
    shard_index: int,
    plaintext: bytes | bytearray | memoryview,
    rng: Rng,
    out: bytearray | memoryview,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> bytes:
    """Encrypt a whole shard into ``out`` (exactly :func:`ciphertext_length` bytes), each
    chunk with ``encrypt_into`` and hashed while it is in cache; return its SHA-256."""
    _check_chunk_size(chunk_size)
    aead = AESGCM(require_bytes(key, KEY_LEN, "shard key"))
    aad = shard_aad(dataset_id, shard_index, chunk_size)
    prefix = require_bytes(rng(NONCE_PREFIX_LEN), NONCE_PREFIX_LEN, "rng output")
    source = memoryview(plaintext).cast("B")
    length = len(source)
    chunks = chunk_count(length, chunk_size)
    if chunks - 1 > U32_MAX:
        raise CryptoInputError(f"shard {shard_index}: too many chunks for STREAM")
    view = memoryview(out).cast("B")
    if len(view) != HEADER_LEN + length + TAG_LEN * chunks:
        raise CryptoInputError(f"shard {shard_index}: output buffer of {len(view)} bytes, the ciphertext "
                               f"is {HEADER_LEN + length + TAG_LEN * chunks}")
    view[:HEADER_LEN] = MAGIC + u32be(chunk_size) + prefix
    digest = hashlib.sha256(view[:HEADER_LEN])
    at = HEADER_LEN
    for c in range(chunks):
        part = source[c * chunk_size : min(length, (c + 1) * chunk_size)]
        end = at + len(part) + TAG_LEN
        chunk = view[at:end]
        aead.encrypt_into(_nonce(prefix, c, c == chunks - 1), part, aad, chunk)
        digest.update(chunk)
        at = end
    return digest.digest()


def encrypt_shard(
    key: bytes,
    dataset_id: bytes,
    shard_index: int,
    plaintext: bytes,
    rng: Rng,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> bytes:
    """Encrypt a whole shard in one call; returns header and all chunks."""
    return seal_shard(key, dataset_id, shard_index, plaintext, rng, chunk_size)[0]


def decrypt_shard(
    key: bytes,
    dataset_id: bytes,
    shard_index: int,
    ciphertext: bytes | bytearray | memoryview,
    max_chunk_size: int = MAX_CHUNK_SIZE,
) -> bytes:
    """Decrypt and authenticate a whole shard; raises :class:`ShardDecryptionError`.

    Accepts and refuses exactly what :class:`ShardDecryptor` does, with the same errors
    (:func:`decrypt_shard_into` a new buffer).
    """
    out = bytearray(max(0, len(memoryview(ciphertext).cast("B")) - HEADER_LEN))
    return bytes(out[:decrypt_shard_into(key, dataset_id, shard_index, ciphertext, out, max_chunk_size)])


def decrypt_shard_into(
    key: bytes,
    dataset_id: bytes,
    shard_index: int,
    ciphertext: bytes | bytearray | memoryview,
    out: bytearray | memoryview,
    max_chunk_size: int = MAX_CHUNK_SIZE,
) -> int:
    """Decrypt and authenticate a whole shard straight into ``out`` (room for the
    plaintext: ``len(ciphertext) - HEADER_LEN`` bytes always suffice); return its length.
    Same errors as :func:`decrypt_shard`; on one, ``out`` holds no usable plaintext."""
    dec = ShardDecryptor(key, dataset_id, shard_index, max_chunk_size)
    data = memoryview(ciphertext).cast("B")
    target = memoryview(out).cast("B")
    if len(data) < HEADER_LEN:
        dec.update(data)
        dec.finalize()  # raises the truncated-header error
    dec.update(data[:HEADER_LEN])
    body = data[HEADER_LEN:]
    full = dec.chunk_size + TAG_LEN
    before_last = (len(body) - 1) // full if len(body) > full else 0
    last = len(body) - before_last * full
    if last < TAG_LEN:  # let the streaming path name the truncation
        plain = dec.update(body) + dec.finalize()
        target[: len(plain)] = plain  # pragma: no cover - finalize() raises first
        return len(plain)  # pragma: no cover
    size = len(body) - (before_last + 1) * TAG_LEN
    if len(target) < size:
        raise CryptoInputError(f"shard {shard_index}: output buffer of {len(target)} bytes, the "
                               f"plaintext is {size}")
    at = 0
    for c in range(before_last):
        dec.open_into(body[c * full : (c + 1) * full], False, target[at : at + full - TAG_LEN])
        at += full - TAG_LEN
    dec.open_into(body[before_last * full :], True, target[at:size])
    return size
