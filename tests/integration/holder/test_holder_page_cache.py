"""A holder's shards leave the page cache (``drop_cache``, on by default): an upload is on
disk and out of memory once sealed, custody still commits it intact, and a shard read for
a download is dropped when the read closes. With ``drop_cache`` off the pages stay."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from pathlib import Path

import pytest
from eth_utils.address import to_checksum_address

from holder_agent.storage import Store
from shardkey.directfile import UPLOAD_BUFFERS
from tests.support.holder_store import stage_shards
from tests.support.pagecache import drops_pages, resident_pages

UPLOADER = to_checksum_address("0x" + "ab" * 20)


@pytest.mark.parametrize("drop", [True, False], ids=["drop_cache", "keep_cache"])
def test_stored_and_served_shards_leave_the_page_cache_unless_told_to_keep_them(
        tmp_path: Path, drop: bool) -> None:
    if not drops_pages(tmp_path):
        pytest.skip(f"{tmp_path}'s filesystem keeps every page (tmpfs): nothing to drop")
    store = Store(tmp_path, quota_bytes=64 << 20, drop_cache=drop)
    dataset = os.urandom(32)
    bodies = {i: os.urandom((4 << 20) + 1039 * (i + 1)) for i in range(3)}
    expected = stage_shards(store, UPLOADER, dataset, bodies)
    staged = [store.staged_path(UPLOADER, dataset, i) for i in bodies]
    assert all((resident_pages(p) == 0) == drop for p in staged)  # written behind, or still cached

    assert store.take_custody(UPLOADER, dataset, expected, bundle=False) == 3
    for index, body in bodies.items():
        path = store.committed_path(dataset, index)
        with open(path, "rb") as warm:  # bring it back, as a download would
            assert warm.read() == body
        assert resident_pages(path) > 0
        handle = store.open_shard(dataset, index)
        assert handle is not None
        with handle:
            assert handle.read() == body
            assert resident_pages(path) > 0  # dropped on close, not while it is being sent
        assert (resident_pages(path) == 0) == drop


def test_a_direct_upload_is_never_in_the_page_cache_and_gives_its_buffer_back(tmp_path: Path) -> None:
    # What the data plane does: each body is received from its socket straight into the
    # buffer it is written from with O_DIRECT. Written-then-dropped pages would show here
    # while the upload is still open.
    if not drops_pages(tmp_path):
        pytest.skip(f"{tmp_path}'s filesystem keeps every page (tmpfs): nothing to bypass")
    store = Store(tmp_path, quota_bytes=64 << 20)
    dataset = os.urandom(32)
    body = os.urandom((9 << 20) + 1039)
    out_before = UPLOAD_BUFFERS._out
    sender, receiver = socket.socketpair()
    with sender, receiver:
        feeder = threading.Thread(target=sender.sendall, args=(body,))
        feeder.start()
        upload = store.begin_upload(UPLOADER, dataset, 0, 16 << 20, hashlib.sha256(body).digest(),
                                    len(body), direct=True)
        assert UPLOAD_BUFFERS._out == out_before + 1
        left = len(body)
        while left > (1 << 20):
            left -= upload.receive(receiver.recv_into, min(left, 256 << 10) - 17)  # odd pieces
        assert os.path.getsize(upload.path) >= 8 << 20 and resident_pages(upload.path) == 0
        while left:
            left -= upload.receive(receiver.recv_into, left)
        feeder.join()
    upload.seal()
    assert store.commit_upload(upload, dataset, 0)
    upload.discard()
    assert UPLOAD_BUFFERS._out == out_before
    staged = store.staged_path(UPLOADER, dataset, 0)
    assert resident_pages(staged) == 0 and staged.read_bytes() == body
    assert store.take_custody(UPLOADER, dataset, {0: hashlib.sha256(body).digest()}, bundle=False) == 1


def test_a_direct_upload_abandoned_midway_leaves_no_file_and_gives_its_buffer_back(tmp_path: Path) -> None:
    store = Store(tmp_path, quota_bytes=64 << 20)
    out_before = UPLOAD_BUFFERS._out
    upload = store.begin_upload(UPLOADER, os.urandom(32), 0, 16 << 20, bytes(32), 6 << 20, direct=True)
    upload.write(os.urandom(5 << 20))
    upload.discard()  # the client went away
    assert UPLOAD_BUFFERS._out == out_before
    assert not upload.path.exists() and list(store.incoming.iterdir()) == []
    assert store.staged_usage(UPLOADER) == 0


class _Gone(Exception):
    """The client went away (the data plane's own exception for it is private)."""


def test_an_upload_whose_client_goes_away_midway_gives_its_buffer_back(tmp_path: Path) -> None:
    # The data plane discards the upload inside the handler of the receive's failure, while
    # the traceback still holds the view it received into; with the pool's idle list full the
    # buffer is unmapped, which any live view would refuse.
    out_before = UPLOAD_BUFFERS._out
    store = Store(tmp_path, quota_bytes=64 << 20)
    upload = store.begin_upload(UPLOADER, os.urandom(32), 0, 16 << 20, bytes(32), 6 << 20, direct=True)
    spare = [UPLOAD_BUFFERS.try_take() for _ in range(UPLOAD_BUFFERS.keep)]  # as other uploads
    for buffer in spare:
        assert buffer is not None
        UPLOAD_BUFFERS.give_back(buffer)
    assert len(UPLOAD_BUFFERS._free) == UPLOAD_BUFFERS.keep

    def gone(view: memoryview) -> int:
        view[:5] = b"about"  # some bytes arrived, then the connection broke
        raise _Gone

    upload.write(os.urandom(1 << 20))
    try:
        upload.receive(gone, 1 << 18)
    except _Gone:
        upload.discard()
    assert UPLOAD_BUFFERS._out == out_before
    assert not upload.path.exists() and store.staged_usage(UPLOADER) == 0
