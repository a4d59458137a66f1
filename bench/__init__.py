"""ShardKey benchmark suite: ``make bench`` (``python -m bench``). See docs/PERFORMANCE.md.

Benchmarks report figures, they assert nothing: the test suite checks correctness.
"""
