"""The curated library surface stays honest."""

import thrifty


def test_all_is_sorted_and_importable() -> None:
    assert thrifty.__all__ == sorted(thrifty.__all__)
    for name in thrifty.__all__:
        assert getattr(thrifty, name) is not None
