"""ShardKey Key Orchestration Service (KOS): one KOS committee member.

Watches approved retrieval requests, re-checks each one's Key Access Policy off chain with
chain time, and posts this member's shares of the request's wrap keys (``releaseShares``,
each share sealed to its fragment holder) or a denial with a reason (``denyRelease``). The
KosCommittee contract issues the marker tokens once ``t_k`` members released.
See ``docs/KOS.md``.
"""
