import pytest

from edge.sequence import SequenceCounter


def test_seq_continues_after_a_restart(tmp_path):
    first = SequenceCounter(tmp_path / "seq")
    assert [first.next() for _ in range(3)] == [1, 2, 3]
    again = SequenceCounter(tmp_path / "seq")  # a new process after a power cut
    assert again.last == 3
    assert again.next() == 4


def test_corrupt_sequence_file_is_not_silently_reset(tmp_path):
    (tmp_path / "seq").write_text("garbage")
    with pytest.raises(ValueError, match="corrupt sequence file"):
        SequenceCounter(tmp_path / "seq")
