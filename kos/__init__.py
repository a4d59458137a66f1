"""ShardKey Key Orchestration Service (KOS).

Watches approved retrieval requests, re-checks each one's Key Access Policy off chain
with chain time, and posts unlock tokens (each fragment holder's wrap key re-sealed to
that holder) or a denial with a reason. Replicas share one HPKE keystore; a
deterministic leader per request and a takeover timeout keep duplicate work rare, and
the contract's one-token-per-(request, holder) rule makes it harmless.
See ``docs/KOS.md``.
"""
