"""Per-device seq tracking: what the server acknowledges, and when a gap is a gap."""

from datetime import UTC, datetime, timedelta

from server.streams import Stream, add_range, receive

T0 = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)


def test_ranges_merge_neighbours_and_overlaps():
    ranges = add_range((), 5, 5)
    ranges = add_range(ranges, 7, 9)
    assert ranges == ((5, 5), (7, 9))
    assert add_range(ranges, 6, 6) == ((5, 9),)
    assert add_range(ranges, 1, 2) == ((1, 2), (5, 5), (7, 9))
    assert add_range(ranges, 3, 12) == ((3, 12),)


def test_in_order_messages_advance_the_acknowledged_seq():
    stream = None
    for seq in range(1, 6):
        stream = receive(stream, "j1", seq, seq, 0, T0)
    assert (stream.contig, stream.pending, stream.gap_since) == (5, (), None)


def test_a_gap_holds_the_ack_back_until_it_is_filled():
    stream = receive(None, "j1", 1, 1, 0, T0)
    stream = receive(stream, "j1", 3, 3, 0, T0)
    stream = receive(stream, "j1", 4, 4, 0, T0 + timedelta(seconds=5))
    assert (stream.contig, stream.pending, stream.gap_since, stream.missing) == (1, ((3, 4),), T0, 1)
    stream = receive(stream, "j1", 2, 2, 0, T0 + timedelta(seconds=9))  # the resend arrives
    assert (stream.contig, stream.pending, stream.gap_since) == (4, (), None)


def test_resends_below_the_ack_change_nothing():
    stream = receive(receive(None, "j1", 1, 5, 0, T0), "j1", 2, 2, 1, T0)
    assert (stream.contig, stream.pending) == (5, ())


def test_the_agents_floor_closes_what_it_already_had_acknowledged():
    # Our database was restored from last night's backup: the agent deleted 1..900 long ago.
    stream = receive(Stream("j1", 100), "j1", 901, 901, 900, T0)
    assert (stream.contig, stream.pending) == (901, ())


def test_a_new_journal_starts_a_new_stream_from_its_floor():
    old = receive(None, "j1", 1, 5000, 0, T0)
    new = receive(old, "j2", 1, 1, 0, T0)  # new SD card: numbering restarts
    assert (new.journal, new.contig) == ("j2", 1)


def test_first_message_of_a_journal_without_floor_starts_the_count_there():
    stream = receive(None, None, 41, 41, None, T0)
    assert (stream.contig, stream.pending) == (41, ())
