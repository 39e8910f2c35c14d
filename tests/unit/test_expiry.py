from pipeline.core.expiry import MINUTE_US, ExpiryClock

HOUR_US = 60 * MINUTE_US


def test_a_replay_runs_expiry_every_event_hour_however_fast_it_goes() -> None:
    clock = ExpiryClock()
    runs = [clock.due(minute * MINUTE_US, wall=minute * 0.001) for minute in range(0, 24 * 60)]
    assert sum(runs) == 23  # one an hour after the first event, whatever the batches
    assert all(not due for due in runs[:60])


def test_live_traffic_runs_about_once_a_minute_of_real_time() -> None:
    clock = ExpiryClock()
    runs = [clock.due(second * 1_000_000, wall=float(second)) for second in range(0, 3600)]
    # event time moves with real time: due every 5 minutes (event time moved enough, a minute passed)
    assert sum(runs) == 11


def test_no_run_while_event_time_stands_still() -> None:
    clock = ExpiryClock()
    assert not clock.due(HOUR_US, wall=0)
    assert not any(clock.due(HOUR_US, wall=float(s)) for s in range(1, 10_000, 100))
    assert clock.due(2 * HOUR_US, wall=10_001)
