"""The DCP engine's rules, driven by a fake clock (no sockets, no sleeps)."""

from exporter.simulator.engine import DcpEngine, Trigger

CUTOFF = 600.0


def make(windows=None):
    windows = {("a", "DERIVATIVES"): 10.0, ("a", "SPOT"): 10.0} if windows is None else windows
    return DcpEngine(lambda acct, product, now: windows.get((acct, product))), windows


def protected(engine, conn, product="DERIVATIVES", now=0.0, account="a", cutoff=CUTOFF):
    engine.open(conn, account, now, cutoff)
    engine.subscribe(conn, product, now)
    engine.ping(conn, now)


def test_last_protected_connection_closing_fires_after_the_window_not_before():
    engine, _ = make()
    protected(engine, "c1")
    engine.close("c1", now=5.0)
    assert engine.timer("a", "DERIVATIVES") == (5.0, 15.0)
    assert engine.due(14.999) == []
    assert engine.due(15.0) == [Trigger("a", "DERIVATIVES", 15.0)]
    assert engine.timer("a", "DERIVATIVES") is None
    assert engine.due(100.0) == []  # fires once


def test_reconnect_and_ping_inside_the_window_resets_the_timer():
    engine, _ = make()
    protected(engine, "c1")
    engine.close("c1", now=1.0)
    engine.open("c2", "a", 5.0, CUTOFF)
    engine.subscribe("c2", "DERIVATIVES", 5.0)
    assert engine.timer("a", "DERIVATIVES") is not None  # subscribing alone is not resuming the heartbeat
    engine.ping("c2", 6.0)
    assert engine.timer("a", "DERIVATIVES") is None
    assert engine.due(50.0) == []


def test_reconnect_without_ping_does_not_save_the_orders():
    engine, _ = make()
    protected(engine, "c1")
    engine.close("c1", now=1.0)
    engine.open("c2", "a", 2.0, CUTOFF)
    engine.subscribe("c2", "DERIVATIVES", 2.0)
    assert [t.product for t in engine.due(11.0)] == ["DERIVATIVES"]


def test_another_protected_connection_alive_means_nothing_happens():
    engine, _ = make()
    protected(engine, "c1")
    protected(engine, "c2")
    engine.close("c1", now=1.0)
    assert engine.timer("a", "DERIVATIVES") is None
    assert engine.due(1000.0) == []
    engine.close("c2", now=2000.0)  # the last one: now the timer starts
    assert engine.timer("a", "DERIVATIVES") == (2000.0, 2010.0)


def test_a_connection_without_dcp_subscription_never_starts_a_timer():
    engine, _ = make()
    engine.open("c1", "a", 0.0, CUTOFF)
    engine.ping("c1", 0.0)
    engine.close("c1", 1.0)
    assert engine.timer("a", "DERIVATIVES") is None and engine.timer("a", "SPOT") is None
    assert engine.due(1000.0) == []


def test_silence_past_the_idle_cutoff_is_death_at_the_cutoff():
    engine, _ = make()
    protected(engine, "c1", cutoff=30.0)
    engine.activity("c1", 10.0)
    assert engine.next_deadline() == 40.0
    dead, fired = engine.tick(39.0)
    assert dead == [] and fired == []
    dead, fired = engine.tick(45.0)
    assert dead == ["c1"] and fired == []
    assert engine.timer("a", "DERIVATIVES") == (40.0, 50.0)
    assert engine.tick(50.0) == ([], [Trigger("a", "DERIVATIVES", 50.0)])


def test_products_are_independent():
    engine, _ = make()
    protected(engine, "spot", product="SPOT")
    protected(engine, "fut", product="DERIVATIVES")
    engine.close("spot", now=1.0)
    assert [t.product for t in engine.due(11.0)] == ["SPOT"]
    assert engine.timer("a", "DERIVATIVES") is None


def test_accounts_are_independent():
    engine, windows = make()
    windows[("b", "DERIVATIVES")] = 10.0
    protected(engine, "a1", account="a")
    protected(engine, "b1", account="b")
    engine.close("b1", now=1.0)
    assert engine.due(11.0) == [Trigger("b", "DERIVATIVES", 11.0)]


def test_product_with_dcp_off_never_triggers():
    engine, windows = make({("a", "DERIVATIVES"): 10.0})
    protected(engine, "c1", product="SPOT")
    engine.close("c1", now=1.0)
    assert engine.timer("a", "SPOT") is None
    # switched off while the timer runs: no trigger either
    protected(engine, "c2", product="DERIVATIVES", now=2.0)
    engine.close("c2", now=3.0)
    del windows[("a", "DERIVATIVES")]
    assert engine.due(20.0) == []


def test_window_is_read_when_the_last_connection_dies():
    engine, windows = make({("a", "DERIVATIVES"): 10.0})
    protected(engine, "c1")
    windows[("a", "DERIVATIVES")] = 30.0
    engine.close("c1", now=0.0)
    assert engine.timer("a", "DERIVATIVES") == (0.0, 30.0)


def test_timer_counts_from_the_first_disconnection_when_a_newcomer_never_pings():
    engine, _ = make()
    protected(engine, "c1")
    engine.close("c1", now=0.0)
    engine.open("c2", "a", 1.0, CUTOFF)
    engine.subscribe("c2", "DERIVATIVES", 1.0)
    engine.close("c2", now=5.0)
    assert engine.timer("a", "DERIVATIVES") == (0.0, 10.0)


def test_connections_expiring_in_one_tick_start_the_timer_at_the_last_death():
    # c1 (opened first) dies at 40, c2 at 30; both are found dead by the same tick
    engine, _ = make()
    protected(engine, "c1", now=10.0, cutoff=30.0)
    protected(engine, "c2", now=0.0, cutoff=30.0)
    dead, fired = engine.tick(45.0)
    assert sorted(dead) == ["c1", "c2"] and fired == []
    assert engine.timer("a", "DERIVATIVES") == (40.0, 50.0)
    assert engine.tick(49.0) == ([], [])
    assert engine.tick(50.0) == ([], [Trigger("a", "DERIVATIVES", 50.0)])


def test_a_connection_silent_past_its_cutoff_does_not_protect_before_it_is_expired():
    engine, _ = make()
    protected(engine, "c1", now=0.0, cutoff=30.0)  # silent: dead from 30 on
    protected(engine, "c2", now=90.0)
    engine.close("c2", now=100.0)
    assert engine.timer("a", "DERIVATIVES") == (100.0, 110.0)
    dead, fired = engine.tick(101.0)
    assert dead == ["c1"] and fired == []
    assert engine.timer("a", "DERIVATIVES") == (100.0, 110.0)
    assert engine.tick(110.0) == ([], [Trigger("a", "DERIVATIVES", 110.0)])


def test_unsubscribing_the_last_protected_subscription_is_a_death_for_that_product():
    engine, _ = make()
    protected(engine, "c1", product="DERIVATIVES")
    engine.subscribe("c1", "SPOT", 0.0)
    protected(engine, "c2", product="SPOT")
    engine.unsubscribe("c1", "SPOT", now=3.0)  # c2 still protects SPOT
    assert engine.timer("a", "SPOT") is None
    engine.unsubscribe("c1", "DERIVATIVES", now=5.0)  # the only DERIVATIVES protection
    assert engine.timer("a", "DERIVATIVES") == (5.0, 15.0)
    engine.close("c1", now=7.0)  # no longer protecting anything: changes nothing
    assert engine.timer("a", "DERIVATIVES") == (5.0, 15.0) and engine.timer("a", "SPOT") is None
    assert engine.due(15.0) == [Trigger("a", "DERIVATIVES", 15.0)]
    engine.unsubscribe("c2", "DERIVATIVES", now=20.0)  # never subscribed: nothing happens
    assert engine.timer("a", "DERIVATIVES") is None
