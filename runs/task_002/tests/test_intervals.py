from intervals import merge_intervals


def test_empty():
    assert merge_intervals([]) == []


def test_disjoint_are_sorted():
    assert merge_intervals([(5, 6), (1, 2)]) == [(1, 2), (5, 6)]


def test_overlapping_and_touching():
    assert merge_intervals([(1, 3), (2, 4), (4, 7), (9, 10)]) == [(1, 7), (9, 10)]


def test_contained():
    assert merge_intervals([(1, 10), (2, 3), (4, 5)]) == [(1, 10)]


def test_input_not_modified():
    data = [(3, 4), (1, 2)]
    merge_intervals(data)
    assert data == [(3, 4), (1, 2)]
