"""Group structure: nesting vs crossing read off the data, and name resolution."""

import numpy as np
import pandas as pd
import pytest

from bayes_steplaw.bayes.hierarchy import Hierarchy


def _frame(rows):
    return pd.DataFrame(rows, columns=["family", "variant", "recipe"])


RELEASED_LIKE = _frame(
    [
        ("dense", "dense", None),
        ("moe", "1in8", None),
        ("moe", "2in88", None),
        ("dense", "dense", None),
    ]
)


def test_family_variant_nest_and_dense_has_no_variant_offset():
    h, idx = Hierarchy.from_frame(RELEASED_LIKE, ("family", "variant"))
    assert [lev.kind for lev in h.levels] == ["nested", "nested"]
    assert h.levels[0].labels == ("dense", "moe")
    assert h.levels[1].labels == ("moe/1in8", "moe/2in88")
    assert h.levels[1].parents == ("moe", "moe")
    np.testing.assert_array_equal(idx, [[0, -1], [1, 0], [1, 1], [0, -1]])
    assert h.group_names() == ["dense", "moe", "moe/1in8", "moe/2in88"]


def test_resolve_names():
    h, _ = Hierarchy.from_frame(RELEASED_LIKE, ("family", "variant"))
    np.testing.assert_array_equal(h.resolve("dense"), [0, -1])
    np.testing.assert_array_equal(h.resolve("moe"), [1, -1])
    np.testing.assert_array_equal(h.resolve("moe/2in88"), [1, 1])
    np.testing.assert_array_equal(h.resolve("new"), [-2, -1])
    np.testing.assert_array_equal(h.resolve("moe/new"), [1, -2])
    for bad in ("gpt", "dense/1in8", "moe/9in9", "moe/1in8/x"):
        with pytest.raises(KeyError, match="known groups: 'dense', 'moe'"):
            h.resolve(bad)


def test_recipe_crossing_architectures_is_crossed():
    frame = _frame(
        [
            ("dense", "dense", "web"),
            ("dense", "dense", "code"),
            ("moe", "1in8", "web"),
            ("moe", "1in8", "code"),
        ]
    )
    h, idx = Hierarchy.from_frame(frame, ("family", "variant", "recipe"))
    assert [lev.kind for lev in h.levels] == ["nested", "nested", "crossed"]
    assert h.levels[1].labels == ("moe/1in8",)
    assert h.levels[2].labels == ("code", "web")
    np.testing.assert_array_equal(idx[:, 2], [1, 0, 1, 0])
    np.testing.assert_array_equal(h.resolve("moe/1in8@code"), [1, 0, 0])
    np.testing.assert_array_equal(h.resolve("dense@new"), [0, -1, -2])
    with pytest.raises(KeyError):
        h.resolve("dense@math")


def test_column_that_never_adds_a_level_is_dropped():
    frame = _frame([("dense", "dense", "web"), ("dense", "dense", "code")])
    h, idx = Hierarchy.from_frame(frame, ("family", "variant", "recipe"))
    assert [lev.column for lev in h.levels] == ["family", "recipe"]
    assert idx.shape == (2, 2)


def test_roundtrip_and_missing_column():
    h, _ = Hierarchy.from_frame(RELEASED_LIKE, ("family", "variant"))
    assert Hierarchy.from_dict(h.to_dict()) == h
    with pytest.raises(ValueError, match=r"\['arch'\]"):
        Hierarchy.from_frame(RELEASED_LIKE, ("arch",))
