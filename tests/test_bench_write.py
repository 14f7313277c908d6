"""Bench scripts write BENCHMARKS.md only when given ``--write`` (issue 14): without it they print."""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

import pytest

import bench.report
import bench.shipped_weights

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p for p in (ROOT / "bench").glob("*.py") if "write_section(" in p.read_text(encoding="utf-8")
                 and p.name != "report.py")


def test_the_write_flag_contract():
    p = argparse.ArgumentParser()
    bench.report.add_write_flag(p)
    plain, written, old = p.parse_args([]), p.parse_args(["--write"]), p.parse_args(["--no-write"])
    assert (plain.write, plain.no_write) == (False, True)
    assert (written.write, written.no_write) == (True, False)
    assert (old.write, old.no_write) == (False, True), "--no-write (the old spelling) must not write"


def test_a_bench_leaves_benchmarks_md_alone_without_write(tmp_path, monkeypatch, capsys):
    report = tmp_path / "BENCHMARKS.md"
    report.write_text("# Benchmarks\n\nuntouched\n")
    monkeypatch.setattr(bench.report, "REPORT", report)
    monkeypatch.setattr(sys, "argv", ["shipped_weights"])
    bench.shipped_weights.main()
    assert report.read_text() == "# Benchmarks\n\nuntouched\n"
    assert "## Shipped weights" in capsys.readouterr().out, "the figures are printed instead"
    monkeypatch.setattr(sys, "argv", ["shipped_weights", "--write"])
    bench.shipped_weights.main()
    assert "<!-- bench:shipped_weights -->" in report.read_text() and "untouched" in report.read_text()


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_every_bench_script_takes_the_write_flag(script):
    """Each script that can write BENCHMARKS.md gets its flag from the one helper, and none
    declares a write-by-default ``--no-write`` of its own."""
    tree = ast.parse(script.read_text(encoding="utf-8"))
    calls = [n.func for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert any(isinstance(f, ast.Name) and f.id == "add_write_flag" for f in calls), script.name
    flags = [a.value for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
             and n.func.attr == "add_argument" for a in n.args if isinstance(a, ast.Constant)]
    assert "--no-write" not in flags and "--write" not in flags, script.name
