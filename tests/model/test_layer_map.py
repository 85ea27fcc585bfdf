import pytest

from geovr.model.layer_map import layer_map


def test_release_tables():
    """Written out by hand from round((g + 1) / 24 * L) with Python's half-to-even rounding."""
    assert layer_map(llm_layers=28) == {4: 6, 11: 14, 17: 21, 23: 28}
    assert layer_map(llm_layers=36) == {4: 8, 11: 18, 17: 27, 23: 36}  # 7.5 -> 8
    assert layer_map((4, 11, 17, 23), 24, 4) == {4: 1, 11: 2, 17: 3, 23: 4}
    assert layer_map((0, 1), 2, 3) == {0: 2, 1: 3}  # 1.5 -> 2 (half to even)


def test_errors():
    with pytest.raises(ValueError, match="outside 0..23"):
        layer_map((24,), 24, 28)
    with pytest.raises(ValueError, match="repeated LLM states"):
        layer_map((4, 5), 24, 2)
    with pytest.raises(ValueError, match=">= 1"):
        layer_map((0,), 24, 0)
