"""Tests for sr_jax/report/html.py: the page parses, is self-contained (one inline script, for sorting), links only
existing relative files, escapes names, shows the numbers of metrics.json (speech metrics too, when present) in the
summary and in one per-file table, highlights the best values, and reads the data through schema.py alone."""

import html.parser
import json
import os
import subprocess
import sys
import urllib.parse

import numpy as np
import pytest
from PIL import Image

from sr_jax.report import html as html_lib
from sr_jax.report import schema
from tests.report.test_evaluation import ODD_NAME, ROOT, fake_report

RATE = 16000
VOID = {"meta", "img", "br", "hr", "input", "link", "source", "wbr", "col", "area", "base", "embed", "track"}


class PageParser(html.parser.HTMLParser):
  """Collects tags, attributes, the text of every <td>/<th> (with its class) per table, and checks nesting."""

  def __init__(self):
    super().__init__(convert_charrefs=True)
    self.stack, self.tags, self.errors = [], [], []
    self.tables, self.table, self.cell, self.text = {}, None, None, []

  def handle_starttag(self, tag, attrs):
    attrs = dict(attrs)
    self.tags.append((tag, attrs))
    if tag not in VOID:
      self.stack.append(tag)
    if tag == "table":
      self.table = self.tables.setdefault(attrs.get("id"), [])
    elif tag == "tr" and self.table is not None:
      self.table.append([])
    elif tag in ("td", "th"):
      self.cell = [tag, attrs.get("class", ""), ""]

  def handle_endtag(self, tag):
    if tag in VOID:
      return
    if not self.stack or self.stack[-1] != tag:
      self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
    else:
      self.stack.pop()
    if tag in ("td", "th") and self.cell is not None:
      self.table[-1].append(tuple(self.cell))
      self.cell = None
    elif tag == "table":
      self.table = None

  def handle_data(self, data):
    if self.cell is not None:
      self.cell[2] += data
    self.text.append(data)


def parse(text):
  parser = PageParser()
  parser.feed(text)
  parser.close()
  assert not parser.errors and not parser.stack, (parser.errors, parser.stack)
  return parser


@pytest.fixture(scope="module")
def report(tmp_path_factory):
  report_dir, doc, _ = fake_report(tmp_path_factory.mktemp("page"))
  with open(os.path.join(report_dir, "index.html"), encoding="utf-8") as f:
    return report_dir, doc, f.read()


def _local(report_dir, url):
  parts = urllib.parse.urlsplit(url)
  assert not parts.scheme and not parts.netloc and not url.startswith("/"), url
  return os.path.join(report_dir, urllib.parse.unquote(parts.path))


def test_page_is_self_contained_and_links_exist(report):
  report_dir, doc, text = report
  page = parse(text)
  tags = [t for t, _ in page.tags]
  assert "link" not in tags and "iframe" not in tags
  assert [a for t, a in page.tags if t == "script"] == [{}]  # one inline script (no src): the table's sorting
  assert "url(" not in text and "@import" not in text and "http" not in text.lower().replace("http-equiv", "")
  images = [a["src"] for t, a in page.tags if t == "img"]
  audios = [a["src"] for t, a in page.tags if t == "audio"]
  assert len(images) == len(doc["files"]) == 2
  assert len(audios) == 4 * len(doc["files"])  # input, model, collab, target
  for url in images + audios:
    assert os.path.isfile(_local(report_dir, url)), url
  for url in images:
    with Image.open(_local(report_dir, url)) as image:
      assert image.format == "PNG" and image.size[0] == 1000
      rgb = np.asarray(image.convert("RGB"))
      assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 150  # most of the 200 colormap levels: spectrograms
  for t, attrs in page.tags:
    if t == "a":
      href = attrs["href"]
      if href.startswith("#"):
        assert any(a.get("id") == href[1:] for _, a in page.tags), href
      else:
        assert os.path.isfile(_local(report_dir, href)), href
  # The odd name's folder is quoted in the URLs (space, &, #, ?, quote, <, >) and exists unquoted.
  odd = [url for url in images if "b%20b%26c%23%3F%27%3Cx%3E" in url]
  assert odd == ["sub_b%20b%26c%23%3F%27%3Cx%3E/spectrograms.png"]


def test_names_are_escaped(report):
  _, _, text = report
  assert ODD_NAME not in text  # raw '<x>' and '&' never reach the markup
  assert html_lib._escape(ODD_NAME) in text
  page = parse(text)
  assert not any(t == "x>" or t == "x" for t, _ in page.tags)
  assert ODD_NAME in "".join(page.text)  # ... but the reader sees the name as it is


def test_tables_show_the_numbers_and_highlight_the_best(report):
  _, doc, text = report
  page = parse(text)
  header, *rows = page.tables["summary"]
  assert [cell[2] for cell in header] == ["system", "LSD", "LSD-HF", "LSD-LF", "SNR (dB)", "SI-SDR (dB)"]
  assert [row[0][2] for row in rows] == [schema.LABELS[s] for s in doc["summary"]]
  for row, (system, values) in zip(rows, doc["summary"].items()):
    for cell, metric in zip(row[1:], ("lsd", "lsd_hf", "lsd_lf", "snr", "si_sdr")):
      assert float(cell[2]) == pytest.approx(values[metric], abs=0.006)
  # The oracle "model" is best in every column; nothing else is highlighted (no ties here).
  best = [[("best" in cell[1]) for cell in row[1:]] for row in rows]
  assert best[0] == [True] * 5 and not any(any(b) for b in best[1:])
  assert "plain mean over the 2 files" in " ".join(text.split()).lower()
  assert "The model's mean LSD is 100.0% below the cubic spline's." in " ".join(text.split())


def test_files_table_has_every_file_in_one_row(report):
  _, doc, _ = report
  page = parse(html_lib.page(doc, {}, 2000.0, RATE))
  top, sub, *rows = page.tables["files"]
  systems = ["model", "collab", "spline", "linear", "input"]
  metrics = ["lsd", "lsd_hf", "lsd_lf", "snr", "si_sdr"]
  assert [cell[2] for cell in top] == ["file", "seconds", "LSD gain", "LSD", "LSD-HF", "LSD-LF", "SNR (dB)",
                                       "SI-SDR (dB)"]
  assert [cell[2] for cell in sub] == systems * 5
  assert len(rows) == len(doc["files"]) == 2
  for row, entry in zip(rows, doc["files"]):
    assert row[0][2] == entry["name"] and float(row[1][2]) == entry["seconds"]
    gain = (entry["spline"]["lsd"] - entry["model"]["lsd"]) / entry["spline"]["lsd"]
    assert row[2][2] == f"{100 * gain:.1f}%" == "100.0%"
    cells = row[3:]
    assert len(cells) == 25
    for m, metric in enumerate(metrics):
      for k, system in enumerate(systems):
        cell = cells[m * len(systems) + k]
        assert float(cell[2]) == pytest.approx(entry[system][metric], abs=0.006), (metric, system)
        assert ("best" in cell[1]) == (system == "model"), (metric, system)  # the oracle, in every metric


def test_only_chosen_files_get_a_section_and_a_link():
  entry = {"name": "x.wav", "seconds": 1.0, "model": {"lsd": 1.0}, "spline": {"lsd": 2.0}}
  doc = {"chain": "c", "checkpoint": "k", "files": [dict(entry, name=f"f{i}.wav") for i in range(5)],
         "summary": {"model": {"lsd": 1.0}, "spline": {"lsd": 2.0}}}
  assets = {3: {"folder": "f3", "spectrograms": "spectrograms.png", "audio": {"model": "model.wav"},
                "why": ["best", "median"]}}
  text = html_lib.page(doc, assets, 2000.0, RATE)
  page = parse(text)
  _, _, *rows = page.tables["files"]
  assert [r[0][2] for r in rows] == [f"f{i}.wav" for i in range(5)]
  assert [a["href"] for t, a in page.tags if t == "a" and a["href"].startswith("#")] == ["#file-3"]
  assert [a["id"] for t, a in page.tags if t == "section"] == ["file-3"]
  assert [a["src"] for t, a in page.tags if t in ("img", "audio")] == ["f3/model.wav", "f3/spectrograms.png"]
  assert ("Shown as the file with the highest LSD gain; the file with the median LSD gain. Its LSD gain: 50.0%."
          in text)
  assert "Audio and spectrograms of 1 of the 5 files" in " ".join(text.split())


def test_speech_metrics_get_columns_when_present():
  row = {"lsd": 1.0, "lsd_hf": 2.0, "lsd_lf": 0.5, "snr": 3.0, "si_sdr": 2.5}
  entry = {"name": "f.wav", "seconds": 1.0, "model": {**row, "pesq": 3.21, "stoi": 0.9123},
           "spline": {**row, "lsd": 2.0, "pesq": None, "stoi": 0.8}}
  doc = {"chain": "c", "checkpoint": "k", "files": [entry],
         "summary": {"model": {**row, "pesq": 3.21, "stoi": 0.9123}, "spline": {**row, "pesq": None, "stoi": 0.8}}}
  page = parse(html_lib.page(doc, {}, 2000.0, RATE))
  header, model, spline = page.tables["summary"]
  assert [c[2] for c in header][-2:] == ["PESQ-wb", "STOI"]
  assert [c[2] for c in model][-2:] == ["3.21", "0.912"] and [c[2] for c in spline][-2:] == ["n/a", "0.800"]
  assert all("best" in c[1] for c in model[-2:]) and not any("best" in c[1] for c in spline[-2:])
  top, sub, cells = page.tables["files"]
  assert [c[2] for c in top][-2:] == ["PESQ-wb", "STOI"] and len(sub) == 2 * 7
  assert [c[2] for c in cells[-4:]] == ["3.21", "n/a", "0.912", "0.800"]


def test_html_reads_the_data_through_the_schema_alone():
  """html.py imports schema (and plots), never evaluation: the two no longer import each other."""
  script = ("import sys\nimport sr_jax.report.html\n"
            "assert 'sr_jax.report.evaluation' not in sys.modules, 'html imports evaluation'\n")
  result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False,
                          env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert result.returncode == 0, result.stderr


def test_best_systems_direction_and_ties():
  table = {"a": {"lsd": 1.0, "snr": 5.0, "stoi": 0.7}, "b": {"lsd": 0.5, "snr": 5.0, "stoi": 0.9},
           "c": {"lsd": None, "snr": 1.0, "stoi": None}}
  assert html_lib.best_systems(table, "lsd") == {"b"}  # lower is better, None skipped
  assert html_lib.best_systems(table, "snr") == {"a", "b"}  # higher is better, ties all highlighted
  assert html_lib.best_systems(table, "stoi") == {"b"}  # higher is better
  assert html_lib.best_systems({"a": {"lsd": None}}, "lsd") == set()
  assert html_lib._format("lsd", None) == "n/a" and html_lib._format("snr", 12.345) == "12.35"


def test_folder_names_are_safe_and_unique():
  used = set()
  names = [html_lib.folder_name(n, used) for n in
           ("a.wav", "a.flac", "A.ogg", "sub/x.wav", "sub\\x.wav", ".hidden.wav", "index.html.wav",
            "metrics.json.flac", "tab\there.wav", "noext")]
  assert names == ["a", "a-2", "A-3", "sub_x", "sub_x-2", "_hidden", "index.html-2", "metrics.json-2",
                   "tab_here", "noext"]
  assert len({n.lower() for n in names}) == len(names)


def test_page_with_a_null_metric():
  doc = {"chain": "c", "checkpoint": "/runs/x/checkpoints/4/",
         "files": [{"name": "f.wav", "seconds": 1.0, "model": dict.fromkeys(schema.METRICS),
                    "input": {"lsd": 1.0, "lsd_hf": 2.0, "lsd_lf": 0.5, "snr": 3.0, "si_sdr": 2.5}}],
         "summary": {"model": dict.fromkeys(schema.METRICS),
                     "input": {"lsd": 1.0, "lsd_hf": 2.0, "lsd_lf": 0.5, "snr": 3.0, "si_sdr": 2.5}}}
  json.dumps(doc, allow_nan=False)
  assets = {0: {"folder": "f", "spectrograms": "spectrograms.png", "audio": {"model_input": "input.wav"},
                "why": ["first"]}}
  page = parse(html_lib.page(doc, assets, 2000.0, 16000))
  _, model, inp = page.tables["summary"]
  assert [c[2] for c in model[1:]] == ["n/a"] * 5 and all("best" in c[1] for c in inp[1:])
  _, _, row = page.tables["files"]
  assert row[2][2] == "n/a"  # no LSD gain without the model's LSD (and no spline here)
  assert "<title>sr_jax evaluation: 4</title>" in html_lib.page(doc, assets, 2000.0, 16000)
