"""The benchmark's pure helpers: wrk's output, medians, ratios, verdicts, CPU plans,
py-spy summaries, the redirect's CPU budget (no load is run here)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.numbers import (
    at_least,
    at_most,
    median,
    median_ratio,
    none,
    paired_ratios,
    percentile,
)
from bench.profile import summarise_collapsed
from bench.servers import cpu_plan, render_nginx_conf
from bench.wrk import WrkOutputError, WrkResult, cycling_paths_script, parse_wrk, wrk_command

WRK_OK = """Running 1s test @ http://127.0.0.1:28099/x
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   357.43us  244.95us   3.68ms   94.97%
    Req/Sec    23.87k     1.63k   25.71k    63.64%
  Latency Distribution
     50%  292.00us
     75%  379.00us
     90%  462.00us
     99%    1.61ms
  26090 requests in 1.10s, 3.63MB read
Requests/sec:  23724.95
Transfer/sec:      3.30MB
"""

WRK_ERRORS = """Running 3s test @ http://127.0.0.1:28080/
  1 threads and 256 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    45.20ms   12.00ms   1.20s    90.00%
    Req/Sec     5.10k   300.00     5.50k    70.00%
  Latency Distribution
     50%   40.50ms
     75%   48.00ms
     90%   60.00ms
     99%    1.20s
  15300 requests in 3.00s, 2.10MB read
  Socket errors: connect 0, read 3, write 0, timeout 12
  Non-2xx or 3xx responses: 42
Requests/sec:   5100.00
Transfer/sec:    716.80KB
"""


def test_parse_wrk_units_and_counts() -> None:
    result = parse_wrk(WRK_OK)
    assert result.requests == 26090
    assert result.seconds == pytest.approx(1.10)
    assert result.rps == pytest.approx(23724.95)
    assert result.p50_ms == pytest.approx(0.292)
    assert result.p99_ms == pytest.approx(1.61)
    assert result.non_3xx == 0
    assert result.socket_errors == 0
    assert result.answered_ok == 26090


def test_parse_wrk_errors_and_seconds_unit() -> None:
    result = parse_wrk(WRK_ERRORS)
    assert result.p50_ms == pytest.approx(40.5)
    assert result.p99_ms == pytest.approx(1200.0)
    assert result.non_3xx == 42
    assert result.socket_errors == 15
    assert result.answered_ok == 15300 - 42


def test_parse_wrk_refuses_output_without_latency() -> None:
    with pytest.raises(WrkOutputError):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")
    without_distribution = "\n".join(
        line for line in WRK_OK.splitlines() if "%" not in line or "Stdev" in line)
    with pytest.raises(WrkOutputError):
        parse_wrk(without_distribution)


def test_wrk_command_pins_and_sets_host() -> None:
    cmd = wrk_command("http://127.0.0.1:1/", connections=64, seconds=2.5, host="a.example",
                      cores=[1])
    assert cmd[:3] == ["taskset", "-c", "1"]
    assert "-c64" in cmd and "-d3s" in cmd and "--latency" in cmd
    assert cmd[cmd.index("-H") + 1] == "Host: a.example"
    assert cmd[-1] == "http://127.0.0.1:1/"
    assert wrk_command("u", connections=1, seconds=1)[0] == "wrk"


def test_cycling_script_quotes_paths() -> None:
    script = cycling_paths_script(["/a", '/b"c'])
    assert '"/a"' in script and '"/b\\"c"' in script
    assert "i % n + 1" in script
    with pytest.raises(ValueError):
        cycling_paths_script([])


def test_median_and_percentile() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5
    assert math.isnan(median([]))
    samples = [float(i) for i in range(1, 101)]
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0
    assert percentile(samples, 100) == 100.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(samples, 0)


def test_ratios_are_taken_inside_each_run() -> None:
    # Run 2 is slow for both: its ratio is as good as the others', which a ratio of
    # medians taken across runs would not show.
    linkhop = [9000.0, 4500.0, 9300.0]
    bare = [10000.0, 5000.0, 10000.0]
    assert paired_ratios(linkhop, bare) == pytest.approx([0.9, 0.9, 0.93])
    assert median_ratio(linkhop, bare) == pytest.approx(0.9)
    assert math.isnan(paired_ratios([1.0], [0.0])[0])
    assert median_ratio([1.0, 2.0], [0.0, 4.0]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        paired_ratios([1.0], [1.0, 2.0])


def test_verdicts() -> None:
    assert at_least(0.95, 0.90).passed and at_least(0.95, 0.90).text() == "PASS (+6 %)"
    assert not at_least(0.45, 0.90).passed and at_least(0.45, 0.90).text() == "MISS (-50 %)"
    assert at_most(8.0, 10.0).text() == "PASS (+20 %)"
    assert at_most(15.0, 10.0).text() == "MISS (-50 %)"
    assert at_least(math.nan, 1.0).text() == "not measured"
    assert none(0).passed and none(0).text() == "PASS"
    assert not none(3).passed and none(3).text() == "MISS"


def test_cpu_plan() -> None:
    one = cpu_plan(1, [0, 1])
    assert one.workers == [[0]] and one.load == [1] and not one.shared
    two = cpu_plan(2, [0, 1])
    assert two.workers == [[0], [1]] and two.load == [0, 1] and two.shared
    four = cpu_plan(2, [0, 1, 2, 3])
    assert four.load == [2, 3] and four.server_cores == [0, 1]
    with pytest.raises(ValueError):
        cpu_plan(1, [])


def test_nginx_template_renders() -> None:
    from bench.servers import NGINX_TEMPLATE

    text = render_nginx_conf(NGINX_TEMPLATE.read_text(), prefix=Path("/x"), port=1234,
                             workers=2)
    assert "listen 127.0.0.1:1234" in text and "worker_processes 2;" in text
    assert "$" not in text


def test_summarise_collapsed_stacks() -> None:
    raw = (
        "main (a.py:1);loop (b.py:2);handler (c.py:3) 6\n"
        "main (a.py:1);loop (b.py:2);handler (c.py:9);lookup (d.py:4) 3\n"
        "main (a.py:1);loop (b.py:5) 1\n"
    )
    own, inclusive = summarise_collapsed(raw, top=5)
    assert own[0].frame == "handler (c.py)" and own[0].percent == pytest.approx(60.0)
    assert [s.frame for s in inclusive][:2] == ["handler (c.py)", "lookup (d.py)"]
    assert inclusive[0].percent == pytest.approx(90.0)
    assert summarise_collapsed("") == ([], [])


def _load(rps: float) -> WrkResult:
    return WrkResult(requests=int(rps * 3), seconds=3.0, rps=rps, p50_ms=1.0, p99_ms=2.0,
                     non_3xx=0, socket_errors=0)


def test_cpu_budget_splits_the_gap_to_bare_aiohttp() -> None:
    from bench.redirect import Cell, _budget

    cell = Cell()
    figures = {"bare": (30_000, 30.0), "hot": (25_000, 36.0), "hot_quiet": (27_000, 33.0),
               "distinct": (15_000, 60.0), "distinct_quiet": (18_000, 50.0)}
    for scenario, (rps, cpu) in figures.items():
        cell.loads[scenario] = [_load(rps)]
        cell.cpu_us[scenario] = [cpu]
    text = _budget(cell)
    assert "at most 33.3 us per request, 3.3 us more than bare aiohttp's 30.0 us" in text
    assert "at most 50.0 us" in text
    assert "hot: 6.0 us per request more than bare aiohttp, of which producing" in text
    assert "acknowledgements) 3.0 us" in text and "acknowledgements) 10.0 us" in text
    assert "| 83 % |" in text  # hot: 25,000 / 30,000 req/s


def test_cpu_seconds_reads_this_process() -> None:
    import os
    import time

    from bench.redirect import cpu_seconds

    before = cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:  # bounded: burns 50 ms of CPU
        pass
    assert cpu_seconds(os.getpid()) >= before
