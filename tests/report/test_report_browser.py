"""The report page in a real browser: headless Chromium opens it without console errors, every image and audio file
loads and decodes, the tables and spectrograms are laid out, and the screenshot is not blank.

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
  assert seen["tables"]["files"][0] == 1 + len(doc["summary"]) * len(doc["files"])
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
