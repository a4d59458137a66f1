"""Body size limit (413), staging quota per account and a full disk (507), and a fuzz of the HTTP API."""

from __future__ import annotations

import errno
import os
import warnings

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from holder_agent import storage
from holder_agent.api import create_app

DS = "0x" + "ab" * 32


def _small(world, **limits):
    agent = world.make_agent(world.tmp / "small", **limits)
    return agent, TestClient(create_app(agent.api))


def test_oversize_body_is_413(world) -> None:
    agent, client = _small(world, max_body_bytes=1000)
    ok = world.put(world.owner, f"/v1/datasets/{DS}/shards/0", os.urandom(1000), client)
    assert ok.status_code == 201
    big = world.put(world.owner, f"/v1/datasets/{DS}/shards/1", os.urandom(1001), client)
    assert big.status_code == 413 and big.json()["error"] == "too_large"

    # no Content-Length (chunked): counted while streaming
    path = f"/v1/datasets/{DS}/shards/2"
    body = os.urandom(5000)
    headers = world.headers(world.owner, "PUT", path, body)
    chunked = client.put(path, content=iter([body[:2500], body[2500:]]), headers=headers)
    assert chunked.status_code == 413
    assert sorted(p.name for p in (agent.store.staged_dir(world.owner.address, bytes.fromhex(DS[2:]))
                                   / "shards").iterdir()) == ["0"]
    assert list(agent.store.incoming.iterdir()) == []


def test_quota_per_account_is_507(world) -> None:
    agent, client = _small(world, quota_bytes=2500, staging_min_charge=0)
    for i in range(2):
        reply = world.put(world.owner, f"/v1/datasets/{DS}/shards/{i}", os.urandom(1000), client)
        assert reply.status_code == 201
    full = world.put(world.owner, f"/v1/datasets/{DS}/shards/2", os.urandom(1000), client)
    assert full.status_code == 507 and full.json()["error"] == "quota_exceeded"
    # replacing a staged file counts only the difference
    assert world.put(world.owner, f"/v1/datasets/{DS}/shards/1", os.urandom(1400), client).status_code == 201
    # another account has its own quota
    other = world.dev.account("other-owner")
    assert world.put(other, f"/v1/datasets/{DS}/shards/2", os.urandom(1000), client).status_code == 201
    # a chunked body without Content-Length is stopped while streaming
    path = f"/v1/datasets/{DS}/bundle"
    body = os.urandom(2000)
    headers = world.headers(world.owner, "PUT", path, body)
    reply = client.put(path, content=iter([body[:1000], body[1000:]]), headers=headers)
    assert reply.status_code == 507
    assert list(agent.store.incoming.iterdir()) == []


def test_a_full_disk_mid_upload_is_507_and_leaves_nothing(world, monkeypatch) -> None:
    agent, client = _small(world)
    write = storage.Upload.write

    def fill_up(self: storage.Upload, chunk: bytes) -> None:
        if self.size + len(chunk) > 1000:  # the filesystem fills up part way through the body
            write(self, chunk[:1000 - self.size])
            raise OSError(errno.ENOSPC, "No space left on device")
        write(self, chunk)

    monkeypatch.setattr(storage.Upload, "write", fill_up)
    path = f"/v1/datasets/{DS}/shards/0"
    body = os.urandom(5000)
    reply = client.put(path, content=iter([body[:2500], body[2500:]]),
                       headers=world.headers(world.owner, "PUT", path, body))
    assert reply.status_code == 507 and reply.json()["error"] == "disk_full"
    assert list(agent.store.incoming.iterdir()) == []
    assert not agent.store.staged_dir(world.owner.address, bytes.fromhex(DS[2:])).exists()
    monkeypatch.setattr(storage.Upload, "write", write)  # space again: the same upload works
    assert world.put(world.owner, path, body, client).status_code == 201


def test_body_other_than_signed_leaves_no_trace(world) -> None:
    agent, client = _small(world)
    path = f"/v1/datasets/{DS}/shards/0"
    headers = world.headers(world.owner, "PUT", path, b"signed body!")
    reply = client.put(path, content=b"another body", headers=headers)  # same length, other hash
    assert reply.status_code == 400 and reply.json()["error"] == "body_mismatch"
    assert list(agent.store.staging.iterdir()) == [] and list(agent.store.incoming.iterdir()) == []
    assert agent.store.staged_usage() == 0


_segments = st.one_of(
    st.sampled_from(["..", ".", "%2e%2e", "%2F", DS, DS[2:], "0", "4294967296", "bundle", "shards",
                     "receipts", "v1", "datasets", "health", "", "-1", "0x", "\u00e9", "%00"]),
    st.text(min_size=0, max_size=12))
_header_names = st.sampled_from(["X-ShardKey-Account", "X-ShardKey-Timestamp", "X-ShardKey-Nonce",
                                 "X-ShardKey-Signature", "Content-Length", "X-Other"])
_header_values = st.one_of(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126),
                                   max_size=70),
                           st.sampled_from(["0x" + "00" * 20, "1", "0" * 32, "0x" + "11" * 65]))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(method=st.sampled_from(["GET", "PUT", "POST", "DELETE", "PATCH"]),
       segments=st.lists(_segments, min_size=0, max_size=6),
       query=st.one_of(st.just(""), st.text(max_size=20)),
       headers=st.dictionaries(_header_names, _header_values, max_size=5),
       body=st.binary(max_size=300))
def test_fuzz_never_500_and_storage_unchanged(world, method, segments, query, headers, body) -> None:
    root = world.agent.store.root
    before = sorted(str(p) for p in root.rglob("*") if "cursor" not in p.name)
    path = "/v1/datasets/" + "/".join(segments) + (f"?{query}" if query else "")
    if "Content-Length" in headers:
        headers = {k: v for k, v in headers.items() if k != "Content-Length"}
    try:
        reply = world.http.request(method, path, headers=headers, content=body)
    except Exception as exc:  # the test client refusing to send garbage is not a server failure
        assert "Invalid" in type(exc).__name__ or isinstance(exc, ValueError | UnicodeError), exc
        return
    if reply.status_code == 200:  # receipts of an unknown dataset: public, empty
        assert method == "GET" and reply.json()["shards"] == []
    else:
        assert 400 <= reply.status_code < 500, (method, path, reply.status_code, reply.text)
        assert set(reply.json()) == {"error", "detail"}
    assert sorted(str(p) for p in root.rglob("*") if "cursor" not in p.name) == before
