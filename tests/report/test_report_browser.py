"""The report page in a real browser: headless Chromium opens it without console errors, every image and audio file
loads and decodes, the tables and spectrograms are laid out, the screenshot is not blank, and clicking the per-file
table's headers sorts it.

Needs Debian's `chromium` (apt-get install -y chromium); skipped where no Chromium is installed.
"""

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from sr_jax.report import html as html_lib
from tests.report.test_evaluation import fake_report

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: apt-get install -y chromium")

# Appended to a copy of the page: records errors (script errors and failed loads of images/audio, which do not reach
# the console), then, once the audio metadata had time to load, writes what it saw into the DOM for --dump-dom.
PROBE = """<script>
window.__errors = [];
window.addEventListener("error", function (e) {
  window.__errors.push(e.message || ("failed to load " + (e.target && (e.target.currentSrc || e.target.src))));
}, true);
window.addEventListener("load", function () {
  setTimeout(function () {
    function box(el) { var r = el.getBoundingClientRect(); return [r.width, r.height]; }
    var out = {errors: window.__errors, images: [], audio: [], tables: {}};
    document.querySelectorAll("img").forEach(function (i) {
      out.images.push([i.getAttribute("src"), i.complete, i.naturalWidth, i.naturalHeight].concat(box(i)));
    });
    document.querySelectorAll("audio").forEach(function (a) {
      out.audio.push([a.getAttribute("src"), a.readyState, a.error ? a.error.code : 0, a.duration]);
    });
    document.querySelectorAll("table").forEach(function (t) { out.tables[t.id] = [t.rows.length].concat(box(t)); });
    var pre = document.createElement("pre");
    pre.id = "probe-result";
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }, 2000);
});
</script>"""


def _chromium(profile, *args, timeout=60):
  command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--mute-audio",
             f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args]
  return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
  report_dir, doc, _ = fake_report(tmp_path_factory.mktemp("browser"))
  return report_dir, doc


def test_page_loads_without_errors(report, tmp_path):
  report_dir, doc = report
  with open(os.path.join(report_dir, "index.html"), encoding="utf-8") as f:
    text = f.read()
  probe = os.path.join(report_dir, "probe.html")  # beside index.html, so the relative links resolve the same way
  with open(probe, "w", encoding="utf-8") as f:
    f.write(text.replace("</body>", PROBE + "</body>"))
  try:
    result = _chromium(tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom", f"file://{probe}")
  finally:
    os.remove(probe)
  match = re.search(r'<pre id="probe-result">(.*?)</pre>', result.stdout, re.DOTALL)
  assert match, result.stderr[-2000:]
  seen = json.loads(match.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">")
                    .replace("&amp;", "&"))
  assert seen["errors"] == []
  assert len(seen["images"]) == len(doc["files"])
  for src, complete, width, height, shown_w, shown_h in seen["images"]:
    assert complete and width == 1000 and height > 500 and shown_w > 500 and shown_h > 500, src
  assert len(seen["audio"]) == 4 * len(doc["files"])
  seconds = {e["name"]: e["seconds"] for e in doc["files"]}
  for src, ready, error, duration in seen["audio"]:
    assert error == 0 and ready >= 1, src  # HAVE_METADATA: the WAV was found and parsed
    assert duration == pytest.approx(seconds["a.wav"] if src.startswith("a/") else seconds[doc["files"][1]["name"]],
                                     abs=1e-3), src
  assert seen["tables"]["summary"][0] == 1 + len(doc["summary"]) and seen["tables"]["summary"][2] > 100
  assert seen["tables"]["files"][0] == 2 + len(doc["files"])  # two header rows, one row per file
  assert "CONSOLE" not in result.stderr, result.stderr


def test_screenshot_shows_tables_and_spectrograms(report, tmp_path):
  report_dir, _ = report
  shot = tmp_path / "page.png"
  result = _chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2000",
                     f"file://{os.path.join(report_dir, 'index.html')}")
  assert shot.exists(), result.stderr[-2000:]
  console = [line for line in result.stderr.splitlines() if "CONSOLE" in line]
  assert console == []
  rgb = np.asarray(Image.open(shot).convert("RGB"))
  assert rgb.shape == (2000, 1280, 3)
  colours = len(np.unique(rgb.reshape(-1, 3), axis=0))
  assert colours > 1000, colours  # text, table highlights and magma spectrograms; a blank page has ~1
  # The highlighted cells' green (#d8f0d0) is there (the summary table), and the lower half of the window,
  # where the first spectrogram figure is, is mostly dark (magma), not white.
  assert np.any(np.all(rgb == (216, 240, 208), axis=-1))
  lower = rgb[1000:, :900].astype(float).mean(axis=-1)
  assert (lower < 100).mean() > 0.2


# Clicks headers of the per-file table in turn and records the file column's order and the header's aria-sort.
SORT_PROBE = """<script>
window.addEventListener("load", function () {
  var table = document.getElementById("files"), out = {sortable: table.className, steps: []};
  function names() {
    return Array.prototype.map.call(table.tBodies[0].rows, function (r) { return r.cells[0].textContent; });
  }
  function header(text, row) {
    return Array.prototype.filter.call(table.tHead.rows[row].cells, function (c) { return c.textContent === text; });
  }
  out.steps.push(["none", names()]);
  var clicks = [["LSD gain", 0, 0], ["LSD gain", 0, 0], ["file", 0, 0], ["file", 0, 0], ["model", 1, 0],
                ["model", 1, 1]];
  clicks.forEach(function (c) {
    var th = header(c[0], c[1])[c[2]];
    th.click();
    out.steps.push([c[0] + "/" + c[2] + " " + th.getAttribute("aria-sort"), names()]);
  });
  var pre = document.createElement("pre");
  pre.id = "probe-result";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def test_headers_sort_the_files_table(tmp_path):
  """Five files: LSD gain sorts best first, then reversed, n/a last both ways; the file column sorts as text with
  numbers in order; the model's LSD (lower is better) sorts ascending first, its SNR (higher is better) descending."""
  gains = {"f10.wav": (1.0, 4.0, 5.0), "f2.wav": (3.0, 4.0, 9.0), "f1.wav": (None, 4.0, 7.0),
           "f3.wav": (2.0, 4.0, 6.0), "f20.wav": (0.5, 4.0, 8.0)}  # name: (model LSD, spline LSD, model SNR)
  files = [{"name": n, "seconds": 1.0, "model": {"lsd": m, "snr": snr}, "spline": {"lsd": s, "snr": 1.0}}
           for n, (m, s, snr) in gains.items()]
  doc = {"chain": "c", "checkpoint": "k", "files": files,
         "summary": {"model": {"lsd": 1.0, "snr": 1.0}, "spline": {"lsd": 4.0, "snr": 1.0}}}
  page = tmp_path / "index.html"
  page.write_text(html_lib.page(doc, {}, 2000.0, 16000).replace("</body>", SORT_PROBE + "</body>"),
                  encoding="utf-8")
  result = _chromium(tmp_path / "profile", "--virtual-time-budget=5000", "--dump-dom", f"file://{page}")
  match = re.search(r'<pre id="probe-result">(.*?)</pre>', result.stdout, re.DOTALL)
  assert match, result.stderr[-2000:]
  seen = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
  assert "sortable" in seen["sortable"]
  assert seen["steps"] == [
      ["none", ["f10.wav", "f2.wav", "f1.wav", "f3.wav", "f20.wav"]],
      ["LSD gain/0 descending", ["f20.wav", "f10.wav", "f3.wav", "f2.wav", "f1.wav"]],  # 87.5%, 75%, 50%, 25%, n/a
      ["LSD gain/0 ascending", ["f2.wav", "f3.wav", "f10.wav", "f20.wav", "f1.wav"]],
      ["file/0 ascending", ["f1.wav", "f2.wav", "f3.wav", "f10.wav", "f20.wav"]],
      ["file/0 descending", ["f20.wav", "f10.wav", "f3.wav", "f2.wav", "f1.wav"]],
      ["model/0 ascending", ["f20.wav", "f10.wav", "f3.wav", "f2.wav", "f1.wav"]],  # LSD 0.5, 1, 2, 3, n/a
      ["model/1 descending", ["f2.wav", "f20.wav", "f1.wav", "f3.wav", "f10.wav"]],  # SNR 9, 8, 7, 6, 5
  ]
  assert "CONSOLE" not in result.stderr, result.stderr


# Clicks the per-file table's "chain", then "source" header and records the (file, chain, source) rows after each.
CHAIN_PROBE = """<script>
window.addEventListener("load", function () {
  var table = document.getElementById("files"), out = [];
  function rows() {
    return Array.prototype.map.call(table.tBodies[0].rows, function (r) {
      return [r.cells[0].textContent, r.cells[1].textContent, r.cells[2].textContent];
    });
  }
  ["chain", "chain", "source"].forEach(function (text) {
    Array.prototype.filter.call(table.tHead.rows[0].cells, function (c) { return c.textContent === text; })[0].click();
    out.push(rows());
  });
  var pre = document.createElement("pre");
  pre.id = "probe-result";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def test_named_chains_page_sorts_by_chain_and_source(tmp_path):
  """A named-chains page with sources: no console errors, and the chain and source columns sort as text (ties keep
  their order)."""
  def entry(name, source, lsd):
    return {"name": name, "seconds": 1.0, "source": source, "model": {"lsd": lsd, "snr": 5.0},
            "spline": {"lsd": 2.0, "snr": 4.0}, "input": {"lsd": 2.5, "snr": 3.0}}

  def chain(name, lsd):
    files = [entry("f1.wav", "vox", lsd), entry("f2.wav", "band", lsd + 0.1)]
    summary = {s: {"lsd": 1.0, "snr": 4.0} for s in ("model", "spline", "input")}
    group = [{"source": s, "files": 1, "summary": summary} for s in ("band", "vox")]
    return {"name": name, "chain": "telephone", "cutoff_hz": 8000.0, "summary": summary, "files": files,
            "sources": group}

  doc = {"checkpoint": "k", "sources_from": "subfolders", "chains": [chain("zz", 1.0), chain("aa", 1.5)],
         "assets": []}
  page = tmp_path / "index.html"
  page.write_text(html_lib.page(doc, {}, None, 16000).replace("</body>", CHAIN_PROBE + "</body>"), encoding="utf-8")
  result = _chromium(tmp_path / "profile", "--virtual-time-budget=5000", "--dump-dom", f"file://{page}")
  match = re.search(r'<pre id="probe-result">(.*?)</pre>', result.stdout, re.DOTALL)
  assert match, result.stderr[-2000:]
  seen = json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))
  assert seen == [
      [["f1.wav", "aa", "vox"], ["f2.wav", "aa", "band"], ["f1.wav", "zz", "vox"], ["f2.wav", "zz", "band"]],
      [["f1.wav", "zz", "vox"], ["f2.wav", "zz", "band"], ["f1.wav", "aa", "vox"], ["f2.wav", "aa", "band"]],
      [["f2.wav", "zz", "band"], ["f2.wav", "aa", "band"], ["f1.wav", "zz", "vox"], ["f1.wav", "aa", "vox"]],
  ]
  assert "CONSOLE" not in result.stderr, result.stderr
