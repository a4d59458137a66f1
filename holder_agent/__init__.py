"""ShardKey holder agent: one storage location.

It stages uploads from data owners, takes custody of the shards and the wrapped
fragment bundle a registration assigns to it, serves shards to approved requesters
with a signed receipt, and answers unlock tokens by re-sealing its fragments to the
requester. See docs/HOLDER_API.md.
"""
