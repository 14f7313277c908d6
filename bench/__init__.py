"""Benchmarks. Each script measures against a baseline in the same run and, given ``--write``, writes its figures
as a section of BENCHMARKS.md (see :func:`bench.report.write_section`)."""
