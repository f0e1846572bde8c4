"""scripts/bench.py itself: a tiny run end to end, through the kernel, against moto.

The benchmark's figures are only as good as its bookkeeping: these runs pin
what it records (request counts per workload, the bare floor, output checks,
the cap) and what it renders (the stdout table, the README tables, --report),
on the 2,000-key directory, metafs only, no chart (no matplotlib needed), in
about ten seconds each on an idle machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.mount

REPO = Path(__file__).resolve().parent.parent
BENCH = [sys.executable, str(REPO / "scripts" / "bench.py")]


def bench(out: Path, *args: str) -> tuple[str, dict]:
    p = subprocess.run([*BENCH, "--server", "moto", "--tools", "metafs", "--no-chart",
                        "--out", str(out), *args], capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return p.stdout, json.loads((out / "results.json").read_text())


def rec(results: dict, workload: str, tool: str) -> dict:
    [r] = [r for r in results["records"] if r["workload"] == workload and r["tool"] == tool]
    return r


def test_tiny_run_records_counts_checks_and_tables(tmp_path: Path) -> None:
    stdout, results = bench(tmp_path, "--delays", "0", "--only", "ls_2k_cold,ls_2k_warm")
    assert results["servers"] == ["moto"] and results["tools"] == ["metafs"]

    bare = rec(results, "ls_2k_cold", "bare")  # the floor: two 1,000-key pages, nothing else
    assert bare["status"] == "ok" and bare["out_lines"] == 2000
    assert bare["requests"]["LIST"] == 2 and bare["requests"]["HEAD"] == 0

    cold = rec(results, "ls_2k_cold", "metafs")
    assert cold["status"] == "ok" and "check" not in cold, cold
    assert cold["out_lines"] == 2001 and cold["rc"] == 0
    assert cold["requests"]["LIST"] >= 2 and cold["vmhwm_kb"] > 0
    warm = rec(results, "ls_2k_warm", "metafs")  # same mount, within the TTL
    assert warm["status"] == "ok" and warm["requests"]["LIST"] == 0
    assert rec(results, "ls_2k_cold", "tmpfs")["out_lines"] == 2001
    assert rec(results, "mount", "metafs")["seconds"] > 0
    assert rec(results, "peak_rss", "metafs")["rss_kb"] > 0

    assert "=== moto S3, round trip 0 ms" in stdout
    assert "ratio: metafs/bare" in stdout
    md = (tmp_path / "benchmark.md").read_text()
    assert "| `ls -l 2k, cold` | 0 ms | " in md and "(2/0)" in md  # bare's LIST/HEAD counts
    assert "| peak RSS (VmHWM) | 0 ms |" in md

    # --report renders the same tables again from results.json, running nothing
    (tmp_path / "benchmark.md").unlink()
    p = subprocess.run([*BENCH, "--report", str(tmp_path / "results.json"), "--no-chart"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "benchmark.md").read_text() == md


def test_a_workload_past_its_cap_is_stopped_and_shown_as_capped(tmp_path: Path) -> None:
    # 400 ms per request: the two LIST pages alone take 0.8 s, past the 0.3 s cap, whatever the load.
    stdout, results = bench(tmp_path, "--delays", "400", "--timeout", "0.3",
                            "--metafs-timeout", "0.3", "--only", "ls_2k_cold")
    for tool in ("metafs", "bare"):
        r = rec(results, "ls_2k_cold", tool)
        assert r["status"] == "timeout" and r["cap_s"] == 0.3, r
    assert "> 0.3 s (cap)" in stdout
    assert "> 0.3 s (cap)" in (tmp_path / "benchmark.md").read_text()
