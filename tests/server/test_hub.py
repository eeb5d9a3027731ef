from server.hub import Hub


def test_reconnecting_client_gets_what_it_missed_in_order():
    hub = Hub()
    first = hub.publish("alert", "venue-a", {"n": 1})
    hub.publish("alert", "venue-b", {"n": 2})
    hub.publish("alert", "venue-a", {"n": 3})
    sub = hub.subscribe(frozenset({"venue-a"}), last_id=first.id)
    got = sub.get(0.1)
    assert (got.type, got.data) == ("alert", {"n": 3})  # venue-b is outside its scope
    assert sub.get(0.01) is None
    sub.close()
    assert hub.subscribers == 0


def test_ids_from_before_a_restart_or_beyond_the_buffer_ask_for_a_resync():
    old = Hub()
    seen = old.publish("alert", None, {}).id
    restarted = Hub(replay=2)
    for _ in range(3):
        restarted.publish("alert", None, {})
    assert restarted.subscribe(None, last_id=seen + 10**9).get(0.1).type == "resync"  # from the future
    assert restarted.subscribe(None, last_id=1).get(0.1).type == "resync"  # fell out of the buffer


def test_a_stalled_client_is_told_to_resync_instead_of_growing_forever():
    hub = Hub()
    sub = hub.subscribe(None)
    sub.queue.maxsize = 2
    for _ in range(5):
        hub.publish("state", None, {})
    assert sub.overflowed


def test_shutdown_ends_every_open_stream():
    hub = Hub()
    subs = [hub.subscribe(None) for _ in range(3)]
    hub.close()
    assert [s.get(0.1).type for s in subs] == ["shutdown"] * 3
