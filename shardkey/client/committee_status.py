"""What the KOS committee did about one request, for ``shardkey fetch``'s messages.

A committee dataset's holders deliver only once ``t_k`` members released their shares (the
release that reaches the threshold issues the tokens), so missing deliveries then say nothing
about the holders: the message names the members that neither released nor denied, and those
that denied with their reasons (``SharesReleased``/``ReleaseDenied``, read from the chain). A
request the committee denied (more than ``m - t_k`` members denied) names its deniers too.
"""

from __future__ import annotations

from shardkey.chain.bindings import ShardKeyChain
from shardkey.chain.codec import checksum
from shardkey.chain.model import FragmentDeal, RequestInfo
from shardkey.crypto.committee_envelope import dealt_committee_epoch
from shardkey.policy.context import DenialReason


def _answers(chain: ShardKeyChain, request: RequestInfo) -> tuple[set[str], dict[str, int]]:
    """The members (lower-case) that released the request, and those that denied it with their
    reason codes, from the request's block on."""
    start = chain.client.blocks_at(request.requested_at, chain.deployment.start_block)[0]
    released: set[str] = set()
    denied: dict[str, int] = {}
    for release in chain.committee.releases(request.request_id, start):
        if release.released:
            released.add(release.member.lower())
        else:
            denied[release.member.lower()] = release.reason
    return released, denied


def committee_not_released(chain: ShardKeyChain, request: RequestInfo, deal: FragmentDeal,
                           waited: float) -> str | None:
    """Why a committee dataset's request has no tokens (who is silent, who denied and why),
    or None when the request's fragment epoch is not a committee one."""
    epoch = dealt_committee_epoch(deal.sealed_wrap_keys)
    if epoch is None:
        return None
    committee = chain.committee.committee(epoch)
    released, denied = _answers(chain, request)
    silent = [m for m in committee.members if m.lower() not in released and m.lower() not in denied]
    refusals = [f"{m} ({DenialReason.text(denied[m.lower()])})" for m in committee.members
                if m.lower() in denied]
    return (f"the KOS committee has not released request {request.request_id}: {len(released)} of the "
            f"{committee.threshold} member releases needed (committee epoch {epoch}, "
            f"{len(committee.members)} members) after waiting {waited:.0f} s; "
            f"no answer from: {', '.join(silent) or 'none'}; denied by: {', '.join(refusals) or 'none'}; "
            "holders deliver fragments only once enough members release: check that the silent members "
            "run ('shardkey kos status'; 'shardkey devnet status' on the devnet)")


def committee_deniers(chain: ShardKeyChain, request: RequestInfo) -> str:
    """For a denied request, the committee members that denied it and why (``; denied by the KOS
    committee members: ADDRESS (reason), ...``), or "" when no member denied (the coordinator
    refused it at request time)."""
    _, denied = _answers(chain, request)
    if not denied:
        return ""
    return "; denied by the KOS committee members: " + ", ".join(
        f"{checksum(member)} ({DenialReason.text(reason)})" for member, reason in denied.items())
