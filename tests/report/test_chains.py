"""Tests for several named degradation chains and test sources in one evaluation (sr_jax/report/evaluation.py,
schema.py, html.py, launch/evaluate.py --chains): a chain's numbers do not depend on the chains beside it (the same
per-file seeds as a single-chain run), the numbers against sr_jax.metrics on independently degraded arrays, files
read once and enhanced once per chain, assets over (chain, file) pairs, the grouping by source (a packaged corpus's
manifest written by sr_jax.data.packaged itself, or subfolders), the page's and report.md's tables against means
computed here, and the --chains grammar and its mistakes (one error line each, before any model is loaded)."""

import json
import os
import re

import numpy as np
import pytest

from sr_jax import metrics as metrics_lib
from sr_jax.data import audio as audio_lib
from sr_jax.data import corpus, datasets, packaged
from sr_jax.errors import UserError
from sr_jax.report import evaluation, schema
from sr_jax.report import html as html_lib
from tests.report.test_evaluation import CHAIN, ODD_NAME, RATE, _launch_all, _tone, expected_signals, make_clean_dir
from tests.report.test_html import parse

NOISY = "noise pink 5 15"  # no sample step (cut-off 8 kHz), an SNR drawn per file from its seed
CHAINS = {"bw4k": CHAIN, "noisy": NOISY}
SYSTEMS = ["model", "spline", "linear", "input"]
KEYS = ("lsd", "snr", "si_sdr")


def soft(audio, rate):
  """A fake model, deterministic in its input and unlike every baseline: a soft clipper."""
  return (np.tanh(3.0 * audio) / 3.0).astype(np.float32), rate


class Counting:
  """An enhancer that counts its calls."""

  def __init__(self, fn):
    self.fn, self.calls = fn, 0

  def __call__(self, audio, rate):
    self.calls += 1
    return self.fn(audio, rate)


def _report(tmp_path, name, chain, data, **kwargs):
  model = Counting(soft)
  doc = evaluation.write_report(str(tmp_path / name), evaluation.clean_files(str(data)), str(data),
                                {"model": model}, chain, "ckpt/7", RATE, seed=3, speech={}, **kwargs)
  return doc, model


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """make_clean_dir's files evaluated under both chains at once, under each alone, and under one named chain."""
  root = tmp_path_factory.mktemp("chains")
  paths = make_clean_dir(root / "data")
  reads = []
  load_clean = datasets.load_clean

  def counted(path, *args, **kwargs):
    reads.append(os.path.basename(path))
    return load_clean(path, *args, **kwargs)

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(datasets, "load_clean", counted)
    both, model = _report(root, "both", CHAINS, root / "data", max_assets=-1)
  out = {"both": both, "both_calls": model.calls, "reads": reads, "root": root, "paths": paths}
  out["bw4k"], _ = _report(root, "bw4k", CHAIN, root / "data")
  out["noisy"], _ = _report(root, "noisy", NOISY, root / "data")
  out["named"], _ = _report(root, "named", {"noisy": NOISY}, root / "data", max_assets=0)
  return out


def test_each_chain_gives_the_numbers_of_a_run_of_it_alone(runs):
  both = runs["both"]
  assert list(both) == ["checkpoint", "chains", "assets"]
  assert [(c["name"], c["chain"], c["cutoff_hz"]) for c in both["chains"]] == [("bw4k", CHAIN, 2000.0),
                                                                              ("noisy", NOISY, 8000.0)]
  for view in both["chains"]:
    single = runs[view["name"]]
    assert set(single) == {"chain", "checkpoint", "files", "summary", "assets"}  # the single-chain layout
    assert single["chain"] == view["chain"]
    assert view["files"] == single["files"] and view["summary"] == single["summary"]
    assert list(view) == ["name", "chain", "cutoff_hz", "summary", "files"]
  named = runs["named"]["chains"][0]
  assert named["files"] == runs["noisy"]["files"] and named["summary"] == runs["noisy"]["summary"]
  # Each file read once for both chains (the silent one too, then skipped), enhanced once per chain.
  assert sorted(runs["reads"]) == sorted(["a.wav", os.path.basename(ODD_NAME), "silent.wav"])
  assert runs["both_calls"] == 2 * 2


def test_chain_numbers_against_independent_references(runs):
  for view in runs["both"]["chains"]:
    assert [e["name"] for e in view["files"]] == ["a.wav", ODD_NAME]
    for entry in view["files"]:
      inputs, target = expected_signals(runs["paths"][entry["name"]], entry["name"], view["chain"], seed=3)
      cutoff = 2000.0 if view["name"] == "bw4k" else 8000.0
      expected = {"model": soft(inputs["soxr"], RATE)[0], "spline": inputs["cubic"], "input": inputs["soxr"]}
      for system, estimate in expected.items():
        want = metrics_lib.all_metrics(target, estimate, RATE, cutoff)
        if cutoff == RATE / 2:  # no band limit: no high band to score
          want["lsd_hf"] = want["lsd_lf"] = None
        assert entry[system] == pytest.approx(want, rel=1e-9, abs=1e-12), (view["name"], system)
    for system in SYSTEMS:
      for metric in schema.METRICS:
        values = [e[system][metric] for e in view["files"]]
        mean = None if None in values else np.mean(values)
        assert view["summary"][system][metric] == pytest.approx(mean, rel=1e-12)
  # The pink noise's SNR is drawn per file: the two files' inputs differ in SNR, and not by the chain's order.
  noisy = runs["both"]["chains"][1]["files"]
  assert noisy[0]["input"]["snr"] != pytest.approx(noisy[1]["input"]["snr"], abs=0.1)


def test_the_chain_none_scores_the_model_on_the_clean_audio(tmp_path):
  """`none`: the input is the clean file itself (LSD 0, its SNR the energy over the metrics' epsilon), the model is
  scored on what it does to it."""
  paths = make_clean_dir(tmp_path / "data")
  assert evaluation.parse_chains("clean=none;bw4k=" + CHAIN) == {"clean": "none", "bw4k": CHAIN}
  doc, _ = _report(tmp_path, "r", {"clean": "none"}, tmp_path / "data", max_assets=0)
  view = doc["chains"][0]
  assert (view["chain"], view["cutoff_hz"]) == ("none", 8000.0)
  for entry in view["files"]:
    target = np.asarray(audio_lib.read(paths[entry["name"]], rate=RATE, mono=True)[0], np.float64)
    assert entry["input"]["lsd"] == 0.0
    energy = np.sum(target ** 2)
    assert entry["input"]["snr"] == pytest.approx(10 * np.log10((energy + 1e-8) / 1e-8), rel=1e-6)
    want = metrics_lib.all_metrics(target, soft(target.astype(np.float32), RATE)[0], RATE, 8000.0)
    assert entry["model"]["snr"] == pytest.approx(want["snr"], rel=1e-6)
    assert entry["model"]["lsd"] == pytest.approx(want["lsd"], rel=1e-6) and entry["model"]["lsd"] > 0.01


def test_assets_over_chain_and_file_pairs(runs):
  root, both = runs["root"], runs["both"]
  assert [(a["chain"], a["name"], a["folder"]) for a in both["assets"]] == [
      ("bw4k", "a.wav", "bw4k_a"), ("bw4k", ODD_NAME, "bw4k_sub_b b&c#?'<x>"), ("noisy", "a.wav", "noisy_a"),
      ("noisy", ODD_NAME, "noisy_sub_b b&c#?'<x>")]
  pairs = [(c["name"], e) for c in both["chains"] for e in c["files"]]
  order = schema.ranking([e for _, e in pairs])
  reasons = {(a["chain"], a["name"]): a["why"] for a in both["assets"]}
  assert "first" in reasons[("bw4k", "a.wav")]
  assert "best" in reasons[(pairs[order[0]][0], pairs[order[0]][1]["name"])]
  assert "worst" in reasons[(pairs[order[-1]][0], pairs[order[-1]][1]["name"])]
  for asset in both["assets"]:  # the model's output under that chain (up to 16-bit quantisation)
    inputs, _ = expected_signals(runs["paths"][asset["name"]], asset["name"], CHAINS[asset["chain"]], seed=3)
    written, _ = audio_lib.read(str(root / "both" / asset["folder"] / "model.wav"), mono=True)
    np.testing.assert_allclose(written, soft(inputs["soxr"], RATE)[0], atol=1 / 32768 + 1e-6)
  assert sorted(os.listdir(root / "named")) == ["index.html", "metrics.json", "report.md"]
  assert json.loads((root / "both" / "metrics.json").read_text()) == both


# ----- the page and report.md ------------------------------------------------------------------------------------


def _md_cell(cell):
  """A GitHub markdown table cell's text: a code span as is (only its '\\|' unescaped), else unescaped."""
  cell = cell.strip()
  if len(cell) > 1 and cell[0] == cell[-1] == "`":
    return cell[1:-1].replace("\\|", "|")
  return re.sub(r"\\(.)", r"\1", cell).replace("&amp;", "&")


def md_tables(text):
  """{heading: [rows]} of report.md's tables (each row a list of unescaped cells), under the heading before each."""
  tables, heading, rows = {}, None, None
  for line in text.splitlines():
    if line.startswith("#"):
      heading, rows = line.lstrip("#").strip(), None
    elif line.startswith("|"):
      cells = [_md_cell(c) for c in re.split(r"(?<!\\)\|", line)[1:-1]]
      if rows is None:
        rows = tables.setdefault(heading, [])
      if not all(re.fullmatch(r":?-+:?", c) for c in cells):
        rows.append(cells)
  return tables


def _mean(entries, system, metric):
  return float(np.mean([e[system][metric] for e in entries]))


def _check_number(cell, value, digits):
  assert float(cell.rstrip("%")) == pytest.approx(value, abs=0.51 * 10 ** -digits), (cell, value)


def test_markdown_by_degradation_against_means_computed_here(runs):
  text = (runs["root"] / "both" / "report.md").read_text(encoding="utf-8")
  tables = md_tables(text)
  header, *rows = tables["By degradation"]
  assert header == ["degradation", "chain", "LSD model", "LSD input", "LSD below input", "LSD below spline",
                    "SNR model (dB)", "SNR input (dB)", "SNR gain (dB)", "SI-SDR model (dB)", "SI-SDR input (dB)",
                    "SI-SDR gain (dB)"]
  assert [row[:2] for row in rows] == [["bw4k", CHAIN], ["noisy", NOISY]]
  for row, view in zip(rows, runs["both"]["chains"]):
    files = view["files"]
    lsd = {s: _mean(files, s, "lsd") for s in ("model", "input", "spline")}
    _check_number(row[2], lsd["model"], 3)
    _check_number(row[3], lsd["input"], 3)
    _check_number(row[4], 100 * (lsd["input"] - lsd["model"]) / lsd["input"], 1)
    _check_number(row[5], 100 * (lsd["spline"] - lsd["model"]) / lsd["spline"], 1)
    for k, metric in ((6, "snr"), (9, "si_sdr")):
      model, given = _mean(files, "model", metric), _mean(files, "input", metric)
      _check_number(row[k], model, 2)
      _check_number(row[k + 1], given, 2)
      _check_number(row[k + 2], model - given, 2)
      assert row[k + 2][0] in "+-"
  assert "By source" not in tables  # one subfolder only: no grouping
  assert [h for h in tables if h.startswith(("bw4k", "noisy"))] == ["bw4k", "noisy"]  # a summary per chain
  assert [r[0] for r in tables["noisy"][1:]] == [schema.LABELS[s] for s in SYSTEMS]


def test_markdown_gains_by_hand_and_escaping():
  summary = {"model": {"lsd": 1.0, "snr": 12.0, "si_sdr": 11.0}, "spline": {"lsd": 1.6, "snr": 10.0, "si_sdr": 9.0},
             "input": {"lsd": 2.0, "snr": 9.5, "si_sdr": 11.25}}
  doc = {"checkpoint": "k", "chains": [
      {"name": "a|b", "chain": "mix 'x|y' 5", "cutoff_hz": 8000.0, "summary": summary, "files": []}],
      "assets": []}
  header, row = md_tables(html_lib.markdown(doc, RATE))["By degradation"]
  assert row == ["a|b", "mix 'x|y' 5", "1.000", "2.000", "50.0%", "37.5%", "12.00", "9.50", "+2.50", "11.00",
                 "11.25", "-0.25"]
  assert len(header) == len(row)
  assert html_lib.md_escape("<x>&_*") == "\\<x\\>&amp;\\_\\*"


def test_page_of_named_chains(runs):
  root, both = runs["root"], runs["both"]
  text = (root / "both" / "index.html").read_text(encoding="utf-8")
  page = parse(text)
  assert {"chains", "summary-0", "summary-1", "files"} <= set(page.tables) and "sources" not in page.tables
  for i, view in enumerate(both["chains"]):
    _, *rows = page.tables[f"summary-{i}"]
    for row, (system, values) in zip(rows, view["summary"].items()):
      assert row[0][2] == schema.LABELS[system]
      for cell, metric in zip(row[1:], schema.METRICS):
        if values[metric] is None:
          assert cell[2] == "n/a"
        else:
          assert float(cell[2]) == pytest.approx(values[metric], abs=0.006)
  _, *rows = page.tables["chains"]
  assert [[c[2] for c in row[:2]] for row in rows] == [["bw4k", CHAIN], ["noisy", NOISY]]
  top, _, *rows = page.tables["files"]
  assert [c[2] for c in top[:5]] == ["file", "chain", "seconds", "LSD gain", "LSD"]
  assert [(r[0][2], r[1][2]) for r in rows] == [("a.wav", "bw4k"), (ODD_NAME, "bw4k"), ("a.wav", "noisy"),
                                                (ODD_NAME, "noisy")]
  assert [a["id"] for t, a in page.tags if t == "section"] == [f"file-{i}" for i in range(4)]
  for t, attrs in page.tags:
    if t in ("img", "audio"):
      assert os.path.isfile(root / "both" / attrs["src"].replace("%20", " ").replace("%26", "&").replace(
          "%23", "#").replace("%3F", "?").replace("%27", "'").replace("%3C", "<").replace("%3E", ">")), attrs
  assert 'href="report.md"' in text


# ----- sources -----------------------------------------------------------------------------------------------------


def _segments(folder, names):
  for i, name in enumerate(names):
    audio_lib.write(str(folder / name), _tone(RATE, 0.3, 180.0 + 41.0 * i), RATE)


def _manifest_row(segment, source, family, split="test"):
  return dict(segment=segment, source=source, family=family, file=f"{source}/x.wav", start=0.0, seconds=0.3,
              split=split, role=split, edge_hz=7900.0, licence="CC0")


@pytest.fixture(scope="module")
def packaged_corpus(tmp_path_factory):
  """A corpus laid out as sr_jax.data.packaged builds it (manifest written by its own write_manifest): test/ holds
  two segments of "band-a", one of "voice-b" and one file the manifest does not list; a train/ row reuses a test
  segment's name under another source (the split is part of the key)."""
  out = tmp_path_factory.mktemp("packaged") / "corpus"
  (out / "test").mkdir(parents=True)
  _segments(out / "test", ["band-a--s1-0000_00.wav", "band-a--s2-0001_50.wav", "voice-b--t-0000_00.wav",
                           "stray.wav"])
  rows = [_manifest_row("band-a--s1-0000_00", "band-a", "fam-a"), _manifest_row("band-a--s2-0001_50", "band-a",
                                                                                  "fam-a"),
          _manifest_row("voice-b--t-0000_00", "voice-b", "fam-b"),
          _manifest_row("voice-b--t-0000_00", "other", "fam-c", split="train")]
  packaged.write_manifest(str(out), {f"{r['split']}/{r['segment']}": r for r in rows})
  return out


def test_file_sources_from_a_packaged_manifest(packaged_corpus):
  assert evaluation.MANIFEST == corpus.MANIFEST
  data = packaged_corpus / "test"
  files = evaluation.clean_files(str(data))
  origin, sources, families = evaluation.file_sources(files, str(data))
  assert origin == str(packaged_corpus / "manifest.tsv")
  assert sources == {"band-a--s1-0000_00.wav": "band-a", "band-a--s2-0001_50.wav": "band-a", "stray.wav":
                     evaluation.UNLISTED, "voice-b--t-0000_00.wav": "voice-b"}
  assert families == {"band-a": "fam-a", "voice-b": "fam-b"}


def test_file_sources_without_a_usable_manifest(tmp_path):
  # Several subfolders: each is a source, files directly in the data folder are "(top level)".
  for sub in ("piano", "voice"):
    (tmp_path / "data" / sub).mkdir(parents=True)
  _segments(tmp_path / "data", ["top.wav"])
  _segments(tmp_path / "data" / "piano", ["p.wav"])
  _segments(tmp_path / "data" / "voice", ["v1.wav", "v2.wav"])
  files = evaluation.clean_files(str(tmp_path / "data"))
  assert evaluation.file_sources(files, str(tmp_path / "data")) == (
      "subfolders", {"piano/p.wav": "piano", "top.wav": evaluation.TOP_LEVEL, "voice/v1.wav": "voice",
                     "voice/v2.wav": "voice"}, {})
  # A piano corpus's manifest (sr_jax.data.corpus: "source" is each piece's score, no "family") is not used.
  (tmp_path / "data" / "manifest.tsv").write_text("\t".join(corpus.MANIFEST_COLUMNS) + "\n" +
                                                  "p\tw\tpiano\t0.3\tscore.mxl\tsynth\t\n")
  assert evaluation.file_sources(files, str(tmp_path / "data"))[0] == "subfolders"
  # One subfolder (or none): no grouping.
  files = evaluation.clean_files(str(tmp_path / "data" / "voice"))
  assert evaluation.file_sources(files, str(tmp_path / "data" / "voice")) is None


def test_by_source_tables_against_means_computed_here(packaged_corpus, tmp_path):
  data = packaged_corpus / "test"
  doc, _ = _report(tmp_path, "report", {"bw4k": CHAIN, "noisy": NOISY}, data, max_assets=0)
  assert doc["sources_from"] == str(packaged_corpus / "manifest.tsv")
  expected = {"band-a": ["band-a--s1-0000_00.wav", "band-a--s2-0001_50.wav"], "voice-b": ["voice-b--t-0000_00.wav"],
              evaluation.UNLISTED: ["stray.wav"]}
  md = md_tables((tmp_path / "report" / "report.md").read_text(encoding="utf-8"))
  header, *rows = md["By source"]
  assert header == ["source", "family", "files", "degradation", "LSD model", "LSD input", "SNR model (dB)",
                    "SNR input (dB)", "SI-SDR model (dB)", "SI-SDR input (dB)"]
  assert [row[:4] for row in rows] == [["band-a", "fam-a", "2", "bw4k"], ["band-a", "fam-a", "2", "noisy"],
                                       ["voice-b", "fam-b", "1", "bw4k"], ["voice-b", "fam-b", "1", "noisy"],
                                       [evaluation.UNLISTED, "", "1", "bw4k"], [evaluation.UNLISTED, "", "1", "noisy"]]
  page = parse((tmp_path / "report" / "index.html").read_text(encoding="utf-8"))
  html_rows = [[c[2] for c in row] for row in page.tables["sources"][1:]]
  assert html_rows == rows  # the page shows the same table
  for view in doc["chains"]:
    assert {e["name"]: e["source"] for e in view["files"]} == {n: s for s, names in expected.items() for n in names}
    groups = view["sources"]
    assert [(g["source"], g.get("family"), g["files"]) for g in groups] == [
        ("band-a", "fam-a", 2), ("voice-b", "fam-b", 1), (evaluation.UNLISTED, None, 1)]
    for group in groups:
      entries = [e for e in view["files"] if e["source"] == group["source"]]
      row = next(r for r in rows if r[0] == group["source"] and r[3] == view["name"])
      for k, metric in enumerate(KEYS):
        for j, system in enumerate(("model", "input")):
          mean = _mean(entries, system, metric)
          assert group["summary"][system][metric] == pytest.approx(mean, rel=1e-12)
          _check_number(row[4 + 2 * k + j], mean, 3 if metric == "lsd" else 2)
  # The single-chain layout keeps its keys and adds the sources.
  single, _ = _report(tmp_path, "single", CHAIN, data, max_assets=0)
  assert list(single) == ["chain", "checkpoint", "sources_from", "files", "summary", "sources", "assets"]
  assert single["sources"] == doc["chains"][0]["sources"] and single["files"] == doc["chains"][0]["files"]
  assert md_tables((tmp_path / "single" / "report.md").read_text(encoding="utf-8"))["By source"][0][:3] == [
      "source", "family", "files"]


# ----- the --chains grammar ----------------------------------------------------------------------------------------


def test_parse_chains_inline_and_from_a_file(tmp_path):
  noises = tmp_path / "my;noises"
  noises.mkdir()
  audio_lib.write(str(noises / "n.wav"), _tone(RATE, 0.3, 100.0), RATE)
  inline = f" bw2k = lowpass random 2000 ; mixed=mix '{noises}' 5 10,sample 8000 16000;"
  assert evaluation.parse_chains(inline) == {"bw2k": "lowpass random 2000",
                                             "mixed": f"mix '{noises}' 5 10,sample 8000 16000"}
  spec = tmp_path / "chains.txt"
  spec.write_text("# degradations of the card\n\nbw4k=sample 8000 16000  # 4 kHz\nnoise10=noise random 10\n"
                  "combined=room synthetic 0.4,lowpass random 2000,noise random 20\n")
  assert evaluation.parse_chains(str(spec)) == {"bw4k": "sample 8000 16000", "noise10": "noise random 10",
                                                "combined": "room synthetic 0.4,lowpass random 2000,noise random 20"}
  spec.write_text("# nothing yet\n\n")
  with pytest.raises(UserError, match="names no chain"):
    evaluation.parse_chains(str(spec))


@pytest.mark.parametrize("spec, message", [
    ("=lowpass random 2000", "--chains piece 1: the chain 'lowpass random 2000' has no name"),
    ("a=lowpass random 2000; a=noise random 10", "--chains piece 2: chain name 'a' is given twice"),
    ("a=lowpass 2000", "--chains piece 1: chain 'a': bad degradation step 'lowpass 2000'.*needs a KIND"),
    ("a=sample 4000 16000,telephon", "chain 'a': bad degradation step 'telephon'.*unknown step"),
    ("a=", "the chain 'a' is empty"),
    ("a b=telephone", "chain name 'a b' may only hold"),
    ("a=telephone;noise random 10", "--chains piece 2: 'noise random 10' is not NAME=CHAIN"),
    ("a=sample 4000 16000;b=sample 8000 22050", "different rates .a: 16000 Hz, b: 22050 Hz."),
    ("nofile.txt", "neither a file nor NAME=CHAIN"),
])
def test_parse_chains_mistakes(spec, message):
  with pytest.raises(UserError, match=message):
    evaluation.parse_chains(spec)


def test_chains_mistakes_are_one_line_before_the_model(tmp_path):
  make_clean_dir(tmp_path / "data")
  (tmp_path / "bad.txt").write_text("ok=telephone\n# fine\nbw=lowpass random 2000 9000 3\n")
  common = [f"--workdir={tmp_path / 'run'}", f"--data={tmp_path / 'data'}", f"--report={tmp_path / 'r'}"]
  cases = {
      "--chains piece 1: the chain 'lowpass random 2000' has no name": ["--chains==lowpass random 2000"],
      "chain name 'a' is given twice": ["--chains=a=telephone;a=noise random 10"],
      "--chains piece 2: chain 'b': bad degradation step 'lowpass 2000'": ["--chains=a=telephone;b=lowpass 2000"],
      "bad.txt line 3: chain 'bw': bad degradation step": [f"--chains={tmp_path / 'bad.txt'}"],
      "give --chain .one chain. or --chains": ["--chain=telephone", "--chains=a=telephone"],
  }
  results = _launch_all([common + args for args in cases.values()])
  for (pattern, _), result in zip(cases.items(), results):
    assert result.returncode == 2, (pattern, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), (pattern, result.stderr)
    assert re.search(pattern, lines[0]), (pattern, lines[0])
  assert not (tmp_path / "r").exists()
