"""Holder HTTP API under stateful hostile sequences (Hypothesis ``RuleBasedStateMachine``).

The integration suite fuzzes single requests; here sequences mix honest and hostile calls
against one agent holding a committed dataset with an open request, so that state built by
one call (a captured signed request, a staged upload, a used nonce) is abused by the next:
replays, signatures re-targeted at another path or account, expired or future timestamps,
uploads over committed data, traversal ids, garbage and oversize bodies, downloads by every
party that is not the request's requester, for a pending and for a completed request.

Invariants after every step: no 5xx; every error is ``{"error", "detail"}`` with a 4xx;
shard bytes go only to the requester of an open request for that dataset; committed files
are byte-identical to what was registered; nothing is left in ``incoming/``.

Why not schemathesis: the API's interesting states (signed headers bound to chain time, a
nonce cache, request status on chain) are outside an OpenAPI schema, so schema-driven
generation mostly produces 401s; a state machine reaches the authorised paths.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from shardkey.httpauth import sign_request
from shardkey.policy import ApprovalGroup
from shardkey.policy.model import Policy

TRAVERSAL = ["..", "%2e%2e", "..%2f..", "%2F", "a/../b", "0x" + "00" * 31 + "/", "\\..\\", "%00",
             "..;", "\u2024\u2024", "0" * 70, "-1", "4294967296", "\uff11"]


@pytest.fixture(scope="module")
def setup(shared_world: Any) -> dict[str, Any]:
    w = shared_world
    built = w.active_dataset()
    open_req = w.request(built)
    completed = w.request(built)
    w.chain.retrievals.complete(w.requester, completed.request_id)
    approver = w.dev.account("approver")
    gated = w.active_dataset(Policy(groups=(ApprovalGroup("ops", (approver.address,), 1),)))
    pending = w.request(gated)
    outsider = w.dev.account("outsider")
    root = w.agent.store.root
    committed = {p: hashlib.sha256(p.read_bytes()).digest()
                 for p in (root / "datasets").rglob("*") if p.is_file()}
    assert committed
    return {"w": w, "built": built, "open": open_req, "completed": completed, "gated": gated,
            "pending": pending, "parties": [w.owner, outsider, w.holders[0], w.holders[1], approver],
            "committed": committed}


def test_stateful_hostile_sequences(setup: dict[str, Any]) -> None:
    w, built, open_req = setup["w"], setup["built"], setup["open"]
    shards = set(built.shards)
    mine = built.my_shards(w.me)

    class HolderApi(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.captured: list[tuple[str, str, dict[str, str], bytes]] = []
            self.last: Any = None

        def send(self, method: str, path: str, headers: dict[str, str], body: bytes = b"",
                 authorised: bool = False) -> Any:
            reply = w.http.request(method, path, headers=headers, content=body)
            self.last = (method, path, reply.status_code)
            assert reply.status_code < 500, (method, path, reply.status_code, reply.text)
            if reply.status_code >= 400:
                assert set(reply.json()) == {"error", "detail"} and reply.json()["detail"], reply.text
            elif method == "GET" and "/shards/" in path:
                assert authorised, f"shard served to a wrong party: {path}"
            if not authorised:
                assert reply.content not in shards and not any(s in reply.content for s in shards if s)
            return reply

        def signed(self, account: Any, method: str, path: str, body: bytes = b"",
                   ts_offset: int = 0) -> dict[str, str]:
            return sign_request(account, w.me, method, path, body, w.now() + ts_offset)

        # --- honest calls (build state) ------------------------------------------------

        @rule(index=st.sampled_from(mine))
        def requester_downloads(self, index: int) -> None:
            path = f"/v1/datasets/{built.hex}/shards/{index}?request={open_req.request_id}"
            headers = self.signed(w.requester, "GET", path)
            reply = self.send("GET", path, headers, authorised=True)
            assert reply.status_code == 200 and reply.content == built.shards[index]
            self.captured.append(("GET", path, headers, b""))

        @rule(body=st.binary(min_size=1, max_size=64))
        def owner_stages(self, body: bytes) -> None:
            ds = "0x" + os.urandom(32).hex()
            path = f"/v1/datasets/{ds}/shards/0"
            headers = self.signed(w.owner, "PUT", path, body)
            assert self.send("PUT", path, headers, body, authorised=True).status_code == 201
            self.captured.append(("PUT", path, headers, body))

        # --- hostile calls -----------------------------------------------------------------

        @rule()
        def replay(self) -> None:
            if not self.captured:
                return
            method, path, headers, body = self.captured[-1]
            assert self.send(method, path, headers, body).status_code == 401

        @rule(party=st.integers(0, 4), index=st.sampled_from(mine),
              which=st.sampled_from(["open", "completed", "pending"]))
        def wrong_party_downloads(self, party: int, index: int, which: str) -> None:
            req = setup[which]
            ds = setup["gated"] if which == "pending" else built
            account = setup["parties"][party] if which == "open" else w.requester
            path = f"/v1/datasets/{ds.hex}/shards/{index}?request={req.request_id}"
            reply = self.send("GET", path, self.signed(account, "GET", path))
            assert reply.status_code in (403, 404), reply.text

        @rule(index=st.sampled_from(mine))
        def other_dataset_same_request(self, index: int) -> None:
            ds = setup["gated"]
            path = f"/v1/datasets/{ds.hex}/shards/{index}?request={open_req.request_id}"
            assert self.send("GET", path, self.signed(w.requester, "GET", path)).status_code in (403, 404)

        # +-400, not +-301: the holder re-reads chain time at most once a second, so the 300 s
        # bound is only exact to within the blocks mined in that second
        @rule(offset=st.sampled_from([-100_000, -400, 400, 100_000]), index=st.sampled_from(mine))
        def stale_or_future(self, offset: int, index: int) -> None:
            path = f"/v1/datasets/{built.hex}/shards/{index}?request={open_req.request_id}"
            reply = self.send("GET", path, self.signed(w.requester, "GET", path, ts_offset=offset))
            assert reply.status_code == 401

        @rule(index=st.sampled_from(mine), how=st.sampled_from(["path", "account", "query", "sig"]))
        def retargeted_signature(self, index: int, how: str) -> None:
            path = f"/v1/datasets/{built.hex}/shards/{index}?request={open_req.request_id}"
            headers = self.signed(w.requester, "GET", path)
            if how == "path":
                path = path.replace(f"/shards/{index}", f"/shards/{index + 1}")
            elif how == "query":
                path += "&x=1"
            elif how == "account":
                headers["X-ShardKey-Account"] = w.owner.address
            else:
                sig = bytearray(bytes.fromhex(headers["X-ShardKey-Signature"].removeprefix("0x")))
                sig[5] ^= 1
                headers["X-ShardKey-Signature"] = "0x" + sig.hex()
            assert self.send("GET", path, headers).status_code in (400, 401)

        @rule(index=st.sampled_from(mine), body=st.binary(max_size=200))
        def overwrite_committed(self, index: int, body: bytes) -> None:
            for account in (w.owner, setup["parties"][1]):
                path = f"/v1/datasets/{built.hex}/shards/{index}"
                reply = self.send("PUT", path, self.signed(account, "PUT", path, body),
                                  body, authorised=True)
                # the owner's different content conflicts; anyone else only stages in its own area
                assert reply.status_code in (201, 409), reply.text
                if reply.status_code == 201:
                    assert body == built.shards[index] or account != w.owner

        @rule(segment=st.sampled_from(TRAVERSAL), kind=st.sampled_from(["id", "index"]),
              method=st.sampled_from(["GET", "PUT"]))
        def traversal(self, segment: str, kind: str, method: str) -> None:
            path = (f"/v1/datasets/{segment}/shards/0" if kind == "id"
                    else f"/v1/datasets/{built.hex}/shards/{segment}")
            try:
                headers = self.signed(w.owner, method, path, b"x")
                reply = self.send(method, path, headers, b"x")
            except UnicodeError:
                return
            assert reply.status_code in (400, 401, 404, 405), (path, reply.status_code)

        @rule(body=st.binary(max_size=512), length=st.sampled_from([None, "-5", "abc", str(1 << 40)]))
        def garbage(self, body: bytes, length: str | None) -> None:
            path = f"/v1/datasets/{built.hex}/bundle"
            headers = self.signed(w.owner, "PUT", path, b"other")
            headers["X-ShardKey-Nonce"] = os.urandom(16).hex()
            if length is not None:
                headers["Content-Length"] = length
            try:
                reply = self.send("PUT", path, headers, body)
            except Exception as exc:  # the client refusing an impossible Content-Length
                assert isinstance(exc, ValueError | RuntimeError) or "Length" in str(exc), exc
                return
            assert reply.status_code in (400, 401, 413), reply.text

        @invariant()
        def committed_intact_and_no_leftovers(self) -> None:
            for path, digest in setup["committed"].items():
                assert hashlib.sha256(path.read_bytes()).digest() == digest, path
            assert list(w.agent.store.incoming.iterdir()) == []

    HolderApi.TestCase.settings = settings(max_examples=12, stateful_step_count=12, deadline=None,
                                           suppress_health_check=list(HealthCheck))
    HolderApi.TestCase().runTest()
