"""The append benchmark still runs end to end (tiny sizes: this checks the
benchmark, not the speed; figures are never asserted in tests)."""

from bench.append import Sizes, print_table, run


def test_append_benchmark_runs_and_reports_every_goal(capsys):
    tiny = Sizes(rounds=1, seq_calls=2, raw_seconds=0.05, threads=3, thread_calls=1,
                 aio_in_flight=4, aio_calls=1, waves_in_flight=4, waves=13, lag_seconds=0.3)
    figures = run("sqlite", quick=True, sizes=tiny)
    print_table("sqlite", figures)
    out = capsys.readouterr().out
    goals = [f for f in figures if f.goal]
    assert len(goals) == 5
    assert all(f.passed in (True, False) for f in goals)
    assert out.count("PASS") + out.count("MISS") == 5
    assert all(f.value > 0 for f in figures)
    assert all(f.ceiling > 0 for f in figures if f.ceiling is not None)
