from server.web.throttle import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_five_failures_lock_the_name_for_the_lockout_period():
    clock = Clock()
    throttle = LoginThrottle(max_failures=5, window_s=900, lockout_s=900, clock=clock)
    for _ in range(4):
        throttle.failed("user:zhang")
    assert throttle.retry_after("user:zhang") == 0
    throttle.failed("user:zhang")
    assert throttle.retry_after("user:zhang") == 900
    assert throttle.retry_after("user:li") == 0  # others are not affected
    clock.now += 901
    assert throttle.retry_after("user:zhang") == 0


def test_failures_spread_beyond_the_window_do_not_add_up():
    clock = Clock()
    throttle = LoginThrottle(max_failures=3, window_s=60, lockout_s=300, clock=clock)
    for _ in range(5):
        throttle.failed("addr:10.0.0.9")
        clock.now += 31
    assert throttle.retry_after("addr:10.0.0.9") == 0


def test_success_clears_the_count():
    clock = Clock()
    throttle = LoginThrottle(max_failures=3, clock=clock)
    throttle.failed("user:zhang")
    throttle.failed("user:zhang")
    throttle.succeeded("user:zhang")
    throttle.failed("user:zhang")
    assert throttle.retry_after("user:zhang") == 0
