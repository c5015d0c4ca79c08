"""bench/card_tables.py: the model-card tables of a hand-made report, cell by cell."""

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import card_tables  # noqa: E402


def _summary(lsd, snr, pesq=None):
  return {"lsd": lsd, "lsd_hf": None, "lsd_lf": None, "snr": snr, "si_sdr": snr - 1.0, "pesq": pesq, "stoi": None}


def _report(tmp_path, name, model_snr, pesq=None):
  doc = {"checkpoint": "x", "chains": [
      {"name": "bw2k", "chain": "lowpass soxr 2000", "cutoff_hz": 2000.0, "files": [{}, {}],
       "summary": {"model": _summary(1.5, model_snr, pesq), "input": _summary(4.25, 12.0, 1.0),
                   "spline": _summary(4.0, 11.875, 1.0), "linear": _summary(4.1, 11.0)},
       "sources": [{"source": "held-out", "files": 2, "summary": {"model": _summary(1.5, model_snr, pesq),
                                                                  "input": _summary(4.25, 12.0, 1.0)}}]},
      {"name": "noise10", "chain": "noise random 10", "cutoff_hz": 8000.0, "files": [{}],
       "summary": {"model": _summary(1.0, 15.0, pesq), "input": _summary(1.25, 10.0, 1.5),
                   "spline": _summary(1.25, 10.0, 1.5), "linear": _summary(1.25, 10.0)}}]}
  folder = tmp_path / name
  folder.mkdir()
  (folder / "metrics.json").write_text(json.dumps(doc))
  return str(folder)


def test_degradation_rows_put_the_model_beside_the_input_and_spline(tmp_path):
  lines = card_tables.degradations(_report(tmp_path, "a", 12.5)).splitlines()
  assert lines[0] == ("| degradation | files | LSD model / input / spline | SNR model / input / spline | "
                      "SI-SDR model / input / spline |")  # no PESQ or STOI anywhere: no column
  assert lines[2] == "| bw2k | 2 | 1.50 / 4.25 / 4.00 | 12.50 / 12.00 / 11.88 | 11.50 / 11.00 / 10.88 |"
  assert lines[3] == "| noise10 | 1 | 1.00 / 1.25 / 1.25 | 15.00 / 10.00 / 10.00 | 14.00 / 9.00 / 9.00 |"


def test_sources_and_comparison(tmp_path):
  a, b = _report(tmp_path, "a", 12.5, pesq=2.0), _report(tmp_path, "b", 13.0)
  lines = card_tables.sources(a).splitlines()
  assert lines[2] == "| bw2k | held-out | 2 | 1.50 / 4.25 | 12.50 / 12.00 | 11.50 / 11.00 | 2.00 / 1.00 |"
  assert len(lines) == 3  # noise10 has no sources
  lines = card_tables.compare([("base", a), ("gan", b)]).splitlines()
  assert lines[0].startswith("| degradation | LSD: input / base / gan | SNR: input / base / gan |")
  assert lines[2] == ("| bw2k | 4.25 / 1.50 / 1.50 | 12.00 / 12.50 / 13.00 | 11.00 / 11.50 / 12.00 | "
                      "1.00 / 2.00 / n/a |")


def _per_file(tmp_path, name, si_sdr):
  """A report with one chain whose files a..e have these SI-SDRs (LSD 1 + SI-SDR / 100)."""
  files = [{"name": f"{chr(97 + i)}.wav", "model": {"si_sdr": v, "lsd": 1 + v / 100, "pesq": None}}
           for i, v in enumerate(si_sdr)]
  folder = tmp_path / name
  folder.mkdir()
  (folder / "metrics.json").write_text(json.dumps({"chains": [{"name": "noise10", "files": files}]}))
  return str(folder)


def test_paired_rows_are_file_by_file_differences(tmp_path, capsys):
  """Hand-worked: B - A = (0, 0, +0.6, -2, -6) over files a..e: mean -1.48, median 0, two files worse than 1 dB, the
  worst e; in LSD (higher is worse) the files move by d / 100: only c's rises (+0.006), the worst."""
  a = _per_file(tmp_path, "a", [10.0, 12.0, 14.0, 16.0, 18.0])
  b = _per_file(tmp_path, "b", [10.0, 12.0, 14.6, 14.0, 12.0])
  lines = card_tables.paired(a, b).splitlines()
  assert lines[0] == ("| degradation | files | SI-SDR A / B | B - A: mean / median | files B - A worse than 1 | "
                      "worst file (B - A) |")
  assert lines[2] == "| noise10 | 5 | 14.00 / 12.52 | -1.48 / +0.00 | 2 | e.wav (-6.00) |"
  assert card_tables.main(["paired", a, b, "--metric=lsd", "--worse=0.004"]) == 0
  lines = capsys.readouterr().out.splitlines()
  assert lines[2] == "| noise10 | 5 | 1.14 / 1.13 | -0.01 / +0.00 | 1 | c.wav (+0.01) |"
  with pytest.raises(SystemExit, match="error: --metric must be one of"):
    card_tables.paired(a, b, metric="sdr")
  with pytest.raises(SystemExit, match="error: --worse must be a number, got 'one'"):
    card_tables.main(["paired", a, b, "--worse=one"])
  with pytest.raises(SystemExit, match="error: .*nowhere holds no metrics.json"):
    card_tables.main(["paired", a, str(tmp_path / "nowhere")])
