"""The model cards' TEST folder: a packaged corpus's test split as one subfolder per source, for `sr-jax evaluate`'s
per-source table.

  python3 bench/test_folders.py ~/.cache/sr_jax/corpora/packaged-music-16000 /tmp/test_music
  python3 bench/test_folders.py CORPUS OUT --held_out=30 --seen=4                  # music_16k's card
  python3 bench/test_folders.py CORPUS OUT --held_out=80 --seen=8 --seen_name=seen-voices-unseen-lines  # speech_16k's

Each held-out family's source (manifest role `test`) gets its own subfolder with up to --held_out of its test segments;
the training sources' test segments (unseen works of sources the model trained on) go together into --seen_name (default
`seen-sources-unseen-works`), up to --seen per source. Segments are taken in name order; the files are symbolic links,
so nothing is copied. OUT must not exist (nothing is overwritten).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys

SEEN = "seen-sources-unseen-works"


def select(manifest: str, held_out: int, seen: int, seen_name: str = SEEN) -> dict[str, list[str]]:
  """{subfolder: [segment names]} of the test split, as the module docstring says."""
  with open(manifest, encoding="utf-8", newline="") as f:
    rows = [r for r in csv.DictReader(f, delimiter="\t") if r["split"] == "test"]
  per_source: dict[str, list[dict]] = {}
  for r in sorted(rows, key=lambda r: r["segment"]):
    per_source.setdefault(r["source"], []).append(r)
  out: dict[str, list[str]] = {}
  for source, found in sorted(per_source.items()):
    held = found[0]["role"] == "test"
    names = [r["segment"] for r in found[:held_out if held else seen]]
    out.setdefault(source if held else seen_name, []).extend(names)
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  parser.add_argument("corpus", help="a packaged corpus folder (manifest.tsv, test/)")
  parser.add_argument("out", help="the folder to create")
  parser.add_argument("--held_out", type=int, default=30, help="segments per held-out source")
  parser.add_argument("--seen", type=int, default=4, help="segments per training source")
  parser.add_argument("--seen_name", default=SEEN, help="the training sources' subfolder")
  args = parser.parse_args(argv)
  manifest = os.path.join(args.corpus, "manifest.tsv")
  if not os.path.isfile(manifest):
    print(f"error: {args.corpus} has no manifest.tsv (build one with `python3 -m sr_jax.data.packaged build`)",
          file=sys.stderr)
    return 2
  if os.path.exists(args.out):
    print(f"error: {args.out} exists; name a new folder", file=sys.stderr)
    return 2
  groups = select(manifest, args.held_out, args.seen, args.seen_name)
  for folder, names in groups.items():
    os.makedirs(os.path.join(args.out, folder))
    for name in names:
      os.symlink(os.path.abspath(os.path.join(args.corpus, "test", name + ".wav")),
                 os.path.join(args.out, folder, name + ".wav"))
  for folder, names in groups.items():
    print(f"{folder}\t{len(names)}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
