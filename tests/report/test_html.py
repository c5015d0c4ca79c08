"""Tests for sr_jax/report/html.py: the page parses, is self-contained, links only existing relative files, escapes
names, shows the numbers of metrics.json and highlights the best value of each column."""

import html.parser
import json
import os
import urllib.parse

import numpy as np
import pytest
from PIL import Image

from sr_jax.report import html as html_lib
from tests.report.test_evaluation import ODD_NAME, fake_report

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
  assert "script" not in tags and "link" not in tags and "iframe" not in tags
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
      assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 500  # spectrograms, not a blank figure
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
  assert [row[0][2] for row in rows] == [html_lib.LABELS[s] for s in doc["summary"]]
  for row, (system, values) in zip(rows, doc["summary"].items()):
    for cell, metric in zip(row[1:], ("lsd", "lsd_hf", "lsd_lf", "snr", "si_sdr")):
      assert float(cell[2]) == pytest.approx(values[metric], abs=0.006)
  # The oracle "model" is best in every column; nothing else is highlighted (no ties here).
  best = [[("best" in cell[1]) for cell in row[1:]] for row in rows]
  assert best[0] == [True] * 5 and not any(any(b) for b in best[1:])
  header, *rows = page.tables["files"]
  assert [cell[2] for cell in header][:3] == ["file", "seconds", "system"]
  assert len(rows) == 5 * len(doc["files"])
  assert rows[0][0][2] == "a.wav" and rows[5][0][2] == ODD_NAME
  assert "plain mean over the 2 files" in " ".join(text.split()).lower()


def test_best_systems_direction_and_ties():
  table = {"a": {"lsd": 1.0, "snr": 5.0}, "b": {"lsd": 0.5, "snr": 5.0}, "c": {"lsd": None, "snr": 1.0}}
  assert html_lib.best_systems(table, "lsd") == {"b"}  # lower is better, None skipped
  assert html_lib.best_systems(table, "snr") == {"a", "b"}  # higher is better, ties all highlighted
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
         "files": [{"name": "f.wav", "seconds": 1.0, "model": dict.fromkeys(html_lib.METRICS),
                    "input": {"lsd": 1.0, "lsd_hf": 2.0, "lsd_lf": 0.5, "snr": 3.0, "si_sdr": 2.5}}],
         "summary": {"model": dict.fromkeys(html_lib.METRICS),
                     "input": {"lsd": 1.0, "lsd_hf": 2.0, "lsd_lf": 0.5, "snr": 3.0, "si_sdr": 2.5}}}
  json.dumps(doc, allow_nan=False)
  assets = [{"folder": "f", "spectrograms": "spectrograms.png", "audio": {"model_input": "input.wav"}}]
  page = parse(html_lib.page(doc, assets, 2000.0, 16000))
  _, model, inp = page.tables["summary"]
  assert [c[2] for c in model[1:]] == ["n/a"] * 5 and all("best" in c[1] for c in inp[1:])
  assert "<title>sr_jax evaluation: 4</title>" in html_lib.page(doc, assets, 2000.0, 16000)
