"""How to cache: keys, store tiers, entries and stream replay, single-flight coalescing.
When to cache lives in ``pipeline/cache.py``."""
