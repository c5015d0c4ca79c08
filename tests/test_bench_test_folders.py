"""bench/test_folders.py: a hand-made manifest's test split, grouped and capped as its docstring says."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import test_folders  # noqa: E402

ROWS = [  # segment, source, split, role
    ("b-2", "band", "test", "test"), ("b-1", "band", "test", "test"), ("b-3", "band", "test", "test"),
    ("k-1", "kit", "test", "test"), ("g-1", "game", "test", "train"), ("g-3", "game", "test", "train"),
    ("g-2", "game", "test", "train"), ("s-1", "synth", "test", "train"), ("g-0", "game", "train", "train"),
    ("b-0", "band", "valid", "test"),
]


def _corpus(tmp_path):
  corpus = tmp_path / "corpus"
  (corpus / "test").mkdir(parents=True)
  lines = ["segment\tsource\tfamily\tsplit\trole"] + [f"{s}\t{src}\t{src}\t{sp}\t{r}" for s, src, sp, r in ROWS]
  (corpus / "manifest.tsv").write_text("\n".join(lines) + "\n")
  for segment, _, split, _ in ROWS:
    if split == "test":
      (corpus / "test" / f"{segment}.wav").write_bytes(segment.encode())
  return corpus


def test_groups_caps_and_links(tmp_path, capsys):
  corpus = _corpus(tmp_path)
  out = tmp_path / "out"
  assert test_folders.main([str(corpus), str(out), "--held_out=2", "--seen=2"]) == 0
  found = {d: sorted(os.listdir(out / d)) for d in os.listdir(out)}
  assert found == {"band": ["b-1.wav", "b-2.wav"], "kit": ["k-1.wav"],
                   "seen-sources-unseen-works": ["g-1.wav", "g-2.wav", "s-1.wav"]}
  assert (out / "band" / "b-2.wav").read_bytes() == b"b-2"  # a link to the corpus's own file
  assert os.path.islink(out / "band" / "b-2.wav")
  assert "seen-sources-unseen-works\t3" in capsys.readouterr().out
  assert test_folders.main([str(corpus), str(tmp_path / "o2"), "--seen=1", "--seen_name=seen"]) == 0
  assert sorted(os.listdir(tmp_path / "o2" / "seen")) == ["g-1.wav", "s-1.wav"]


def test_refuses_an_existing_folder_and_a_folder_without_manifest(tmp_path, capsys):
  corpus = _corpus(tmp_path)
  (tmp_path / "out").mkdir()
  assert test_folders.main([str(corpus), str(tmp_path / "out")]) == 2
  assert test_folders.main([str(tmp_path), str(tmp_path / "new")]) == 2
  err = capsys.readouterr().err.splitlines()
  assert err[0].startswith("error: ") and "exists" in err[0] and "no manifest.tsv" in err[1]
  assert not (tmp_path / "new").exists()
