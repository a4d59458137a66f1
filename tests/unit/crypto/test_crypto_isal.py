"""ISA-L's kernels give zfec's code byte for byte, on every input shape the callers pass."""

from __future__ import annotations

import itertools
import random

import pytest
import zfec
from hypothesis import given, settings
from hypothesis import strategies as st

from shardkey.crypto import erasure, isal
from shardkey.crypto.errors import ErasureParameterError


@pytest.fixture(scope="module")
def kernels() -> isal.Kernels:
    found = erasure.accelerated()
    # pyeclib is a locked dependency on linux x86_64: without its ISA-L every store pays
    # zfec's 2.3 s per GiB, so a missing library is a failure here, not a skip.
    assert found is not None, f"ISA-L did not load from {isal.library_path()!r}"
    return found


def _blocks(rng: random.Random, k: int, length: int) -> list[bytes]:
    return [rng.randbytes(length) for _ in range(k)]


@settings(max_examples=80, deadline=None)
@given(k=st.integers(1, 12), p=st.integers(1, 6), length=st.integers(1, 3000), seed=st.integers(0, 2**32))
def test_parity_is_zfecs(kernels: isal.Kernels, k: int, p: int, length: int, seed: int) -> None:
    data = _blocks(random.Random(seed), k, length)
    expected = zfec.Encoder(k, k + p).encode(data, tuple(range(k, k + p)))
    assert erasure.encode_blocks(data, k, p) == [bytes(b) for b in expected]


@settings(max_examples=60, deadline=None)
@given(k=st.integers(1, 8), p=st.integers(1, 5), length=st.integers(1, 700), seed=st.integers(0, 2**32))
def test_any_k_blocks_decode_to_the_data(kernels: isal.Kernels, k: int, p: int, length: int,
                                         seed: int) -> None:
    rng = random.Random(seed)
    data = _blocks(rng, k, length)
    full = data + erasure.encode_blocks(data, k, p)
    keep = rng.sample(range(k + p), k)
    assert erasure.decode_blocks({j: full[j] for j in keep}, k, p) == data


def test_every_subset_of_a_wide_stripe(kernels: isal.Kernels) -> None:
    k, p, length = 4, 4, 257  # 257: not a multiple of any vector width
    data = _blocks(random.Random(7), k, length)
    full = data + erasure.encode_blocks(data, k, p)
    for subset in itertools.combinations(range(k + p), k):
        assert erasure.decode_blocks({j: full[j] for j in subset}, k, p) == data, subset


def test_widest_code(kernels: isal.Kernels) -> None:
    k, p = 200, 56  # k + p = 256, the most GF(2^8) allows
    data = _blocks(random.Random(3), k, 64)
    parity = erasure.encode_blocks(data, k, p)
    assert parity == [bytes(b) for b in zfec.Encoder(k, k + p).encode(data, tuple(range(k, k + p)))]
    keep = {j: (data + parity)[j] for j in range(p, k + p)}  # the first p data blocks lost
    assert erasure.decode_blocks(keep, k, p) == data


def test_every_buffer_kind_reads_the_same(kernels: isal.Kernels) -> None:
    raw = _blocks(random.Random(5), 3, 1000)
    expected = erasure.encode_blocks(raw, 3, 2)
    backing = bytearray(b"".join(raw))
    writable = [memoryview(backing)[i * 1000:(i + 1) * 1000] for i in range(3)]
    readonly = [memoryview(b) for b in raw]
    mixed = [bytearray(raw[0]), readonly[1], writable[2]]
    for blocks in (writable, readonly, mixed):
        assert erasure.encode_blocks(blocks, 3, 2) == expected
    assert backing == b"".join(raw)  # inputs are only read


def test_lengths_are_checked_before_c_sees_them(kernels: isal.Kernels) -> None:
    tables = kernels.tables(erasure.parity_rows(3, 2), 3)
    with pytest.raises(ErasureParameterError, match="exactly 100 bytes"):
        kernels.apply(tables, 3, 2, [bytes(100), bytes(100), bytes(99)], 100)
    with pytest.raises(ErasureParameterError, match="need 3 inputs"):
        kernels.apply(tables, 3, 2, [bytes(100)] * 2, 100)
    with pytest.raises(ErasureParameterError, match="tables for 3 x 3"):
        kernels.apply(tables, 3, 3, [bytes(100)] * 3, 100)  # tables made for two rows
    with pytest.raises(ErasureParameterError, match="2 x 3 bytes"):
        kernels.tables([[1, 2, 3], [1, 256, 3]], 3)
    with pytest.raises(ErasureParameterError, match="differ in length"):
        erasure.encode_blocks([bytes(4), bytes(4), bytes(5)], 3, 2)


def test_singular_matrix_is_refused(kernels: isal.Kernels) -> None:
    assert kernels.invert([[1, 0], [0, 1]]) == [[1, 0], [0, 1]]
    with pytest.raises(ErasureParameterError, match="linearly dependent"):
        kernels.invert([[1, 2], [1, 2]])


def test_a_library_that_gets_the_known_answer_wrong_is_not_used(kernels: isal.Kernels) -> None:
    rows, inputs, expected = erasure._known_answer()
    assert isal.load((rows, inputs, expected)) is not None
    wrong = [bytes(b ^ 1 for b in expected[0]), expected[1]]
    assert isal.load((rows, inputs, wrong)) is None


def test_without_isal_zfec_gives_the_same_blocks(kernels: isal.Kernels,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(11)
    cases = [(k, p, rng.randrange(1, 2000)) for k, p in ((1, 1), (3, 2), (5, 3), (10, 4))]
    fast = []
    for k, p, length in cases:
        data = _blocks(rng, k, length)
        full = data + erasure.encode_blocks(data, k, p)
        keep = rng.sample(range(k, k + p), min(p, k)) + list(range(k))[: k - min(p, k)]
        fast.append((data, full, keep, erasure.decode_blocks({j: full[j] for j in keep}, k, p)))
    monkeypatch.setattr(erasure, "accelerated", lambda: None)  # the fallback where ISA-L is absent
    for (k, p, _), (data, full, keep, decoded) in zip(cases, fast, strict=True):
        assert erasure.encode_blocks(data, k, p) == full[k:]
        assert erasure.decode_blocks({j: full[j] for j in keep}, k, p) == decoded == data


@pytest.mark.parametrize("isal_loaded", [True, False])
def test_parity_into_given_buffers(kernels: isal.Kernels, monkeypatch: pytest.MonkeyPatch,
                                   isal_loaded: bool) -> None:
    data = _blocks(random.Random(13), 3, 5000)
    expected = [bytes(b) for b in zfec.Encoder(3, 5).encode(data, (3, 4))]
    if not isal_loaded:
        monkeypatch.setattr(erasure, "accelerated", lambda: None)
    backing = bytearray(b"\xff" * 10000)  # stale bytes from an earlier stripe: all overwritten
    out = [memoryview(backing)[:5000], memoryview(backing)[5000:]]
    assert erasure.encode_blocks(data, 3, 2, out) == out
    assert [bytes(b) for b in out] == expected
    with pytest.raises(ErasureParameterError, match="outputs of exactly 5000 bytes"):
        erasure.encode_blocks(data, 3, 2, [bytearray(5000), bytearray(4999)])
    with pytest.raises(ErasureParameterError, match="outputs of exactly 5000 bytes"):
        erasure.encode_blocks(data, 3, 2, [bytearray(5000)])
