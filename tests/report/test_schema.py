"""Tests for sr_jax/report/schema.py: the LSD gain, the ranking and the choice of the files with audio and
spectrograms (hand-worked cases), the summary with optional and null metrics, and metrics.json's keys."""

import pytest

from sr_jax import metrics as metrics_lib
from sr_jax.report import schema


def entry(model_lsd, spline_lsd=2.0):
  return {"name": "x", "seconds": 1.0, "model": {"lsd": model_lsd}, "spline": {"lsd": spline_lsd}}


# Gains (spline 2.0): 0.5, 0.75, 0.05, -0.5, None, 0.4, 0.95, 0.5 -> ranking, best first, ties in file order, None
# last: 6 (0.95), 1 (0.75), 0 (0.5), 7 (0.5), 5 (0.4), 2 (0.05), 3 (-0.5), 4 (None).
EIGHT = [entry(v) for v in (1.0, 0.5, 1.9, 3.0, None, 1.2, 0.1, 1.0)]


def test_metric_names_match_sr_jax_metrics():
  assert schema.METRICS == metrics_lib.METRIC_NAMES
  assert set(schema.LOWER_IS_BETTER) == set(schema.ALL_METRICS) == set(schema.METRIC_LABELS)


def test_lsd_gain():
  assert schema.lsd_gain(entry(1.0, 4.0)) == 0.75  # 75% below spline
  assert schema.lsd_gain(entry(5.0, 4.0)) == -0.25  # worse than spline
  assert schema.lsd_gain(entry(None)) is None and schema.lsd_gain(entry(1.0, None)) is None
  assert schema.lsd_gain(entry(0.0, 0.0)) is None
  assert schema.lsd_gain({"name": "x", "spline": {"lsd": 1.0}}) is None  # no model


def test_ranking():
  assert schema.ranking(EIGHT) == [6, 1, 0, 7, 5, 2, 3, 4]


@pytest.mark.parametrize("max_assets, expected", [
    (0, {}),
    (1, {0: ["first"]}),
    (2, {0: ["first"], 6: ["best"]}),
    (3, {0: ["first"], 6: ["best"], 7: ["median"]}),  # rank (8 - 1) // 2 = 3: file 7
    (4, {0: ["first"], 4: ["worst"], 6: ["best"], 7: ["median"]}),
    # Taken ranks 0, 2 (file 0), 3, 7: the widest gap is 3..7, its middle rank 5 (file 2).
    (5, {0: ["first"], 2: ["spread"], 4: ["worst"], 6: ["best"], 7: ["median"]}),
    # Then ranks 1, 4 and 6 are each 1 from a taken rank: the best of them first (rank 1: file 1).
    (6, {0: ["first"], 1: ["spread"], 2: ["spread"], 4: ["worst"], 6: ["best"], 7: ["median"]}),
    (7, {0: ["first"], 1: ["spread"], 2: ["spread"], 4: ["worst"], 5: ["spread"], 6: ["best"], 7: ["median"]}),
    (-1, {0: ["first"], 1: ["spread"], 2: ["spread"], 3: ["spread"], 4: ["worst"], 5: ["spread"], 6: ["best"],
          7: ["median"]}),
])
def test_choose_assets(max_assets, expected):
  chosen = schema.choose_assets(EIGHT, max_assets)
  assert chosen == expected
  assert list(chosen) == sorted(chosen)  # file order


def test_choose_assets_one_file_many_reasons_and_no_gain():
  # The first file is also the best: one place, two reasons; the freed place goes to the ranking's spread.
  three = [entry(0.1), entry(1.0), entry(1.5)]  # ranking 0, 1, 2: best 0, median 1, worst 2
  assert schema.choose_assets(three, 2) == {0: ["first", "best"], 1: ["median"]}
  assert schema.choose_assets(three, 8) == {0: ["first", "best"], 1: ["median"], 2: ["worst"]}
  assert schema.choose_assets([entry(1.0)], 8) == {0: ["first", "best", "median", "worst"]}
  # No file with a gain (no model, or no spline): the first file, then spread in file order.
  plain = [{"name": str(i), "input": {"lsd": 1.0}} for i in range(9)]
  assert schema.choose_assets(plain, 3) == {0: ["first"], 8: ["spread"], 4: ["spread"]}
  assert schema.choose_assets([], 8) == {}


def test_choose_assets_spread_covers_a_long_ranking_evenly():
  many = [entry(2.0 - i / 1000) for i in range(1000)]  # gain grows with the index: ranking 999, 998, ..., 0
  chosen = schema.choose_assets(many, 8)
  assert len(chosen) == 8
  ranks = sorted(999 - i for i in chosen)
  assert ranks[0] == 0 and ranks[-1] == 999 and 499 in ranks and 999 in ranks  # best, worst, median, first
  assert max(b - a for a, b in zip(ranks, ranks[1:])) <= 250  # no big hole in the ranking


def test_summarize_with_speech_and_null_metrics():
  entries = [{"model": {"lsd": 1.0, "snr": 10.0, "pesq": 3.0, "stoi": None}},
             {"model": {"lsd": 2.0, "snr": 14.0, "pesq": 4.0, "stoi": 0.8}}]
  assert schema.summarize(entries, ["model"]) == {"model": {"lsd": 1.5, "snr": 12.0, "pesq": 3.5, "stoi": None}}
  assert schema.metric_names({"model": entries[0]["model"]}) == ("lsd", "snr", "pesq", "stoi")
  assert schema.metric_names({"model": {"stoi": 1.0, "lsd": 1.0}, "spline": {"pesq": 2.0}}) == ("lsd", "pesq",
                                                                                                  "stoi")


def test_document_keys():
  entries = [{"name": "a.wav", "seconds": 1.0, "model": {"lsd": 1.0}}]
  doc = schema.document("sample 4000 16000", "ckpt", entries, ["model"],
                        [{"name": "a.wav", "folder": "a", "why": ("first",), "audio": {}}], stride=4, window=8)
  assert doc == {"chain": "sample 4000 16000", "checkpoint": "ckpt", "stride": 4, "window": 8, "files": entries,
                 "summary": {"model": {"lsd": 1.0}},
                 "assets": [{"name": "a.wav", "folder": "a", "why": ["first"]}]}
  assert list(schema.document("c", "k", entries, ["model"])) == ["chain", "checkpoint", "files", "summary", "assets"]


def test_chains_document_and_chain_views():
  a = [{"name": "x.wav", "seconds": 1.0, "source": "s", "model": {"lsd": 1.0}},
       {"name": "y.wav", "seconds": 1.0, "source": "r", "model": {"lsd": 2.0}}]
  b = [{"name": "x.wav", "seconds": 1.0, "model": {"lsd": 3.0}}]
  doc = schema.chains_document("ckpt", [{"name": "a", "chain": "telephone", "cutoff_hz": 8000, "files": a},
                                        {"name": "b", "chain": "sample 4000 16000", "cutoff_hz": 2000.0, "files": b}],
                               ["model"], [{"chain": "b", "name": "x.wav", "folder": "b_x", "why": ("first",)}],
                               window=8, sources_from="subfolders", families={"s": "fam"})
  assert doc == {
      "checkpoint": "ckpt", "window": 8, "sources_from": "subfolders",
      "chains": [{"name": "a", "chain": "telephone", "cutoff_hz": 8000.0, "summary": {"model": {"lsd": 1.5}},
                  "files": a, "sources": [{"source": "r", "files": 1, "summary": {"model": {"lsd": 2.0}}},
                                          {"source": "s", "family": "fam", "files": 1,
                                           "summary": {"model": {"lsd": 1.0}}}]},
                 {"name": "b", "chain": "sample 4000 16000", "cutoff_hz": 2000.0, "summary": {"model": {"lsd": 3.0}},
                  "files": b}],
      "assets": [{"chain": "b", "name": "x.wav", "folder": "b_x", "why": ["first"]}]}
  assert schema.chain_views(doc) == doc["chains"]
  single = schema.document("telephone", "ckpt", b, ["model"])
  assert schema.chain_views(single) == [{"name": None, "chain": "telephone", "summary": {"model": {"lsd": 3.0}},
                                         "files": b}]
  assert [schema.chain_label(v) for v in doc["chains"] + schema.chain_views(single)] == ["a", "b", "telephone"]
  assert schema.chain_label({"name": None, "chain": ""}) == "(no degradation)"


def test_group_sources_order_and_means():
  entries = [{"source": "(not in manifest)", "m": {"lsd": 9.0}}, {"source": "b", "m": {"lsd": 1.0}},
             {"source": "a", "m": {"lsd": 2.0}}, {"source": "b", "m": {"lsd": 4.0}}]
  assert schema.group_sources(entries, ["m"], {"b": "fam-b", "z": "unused"}) == [
      {"source": "a", "files": 1, "summary": {"m": {"lsd": 2.0}}},
      {"source": "b", "family": "fam-b", "files": 2, "summary": {"m": {"lsd": 2.5}}},
      {"source": "(not in manifest)", "files": 1, "summary": {"m": {"lsd": 9.0}}}]


def test_improvement():
  assert schema.improvement(1.0, 4.0, "lsd") == 0.75  # 75% below the baseline, as lsd_gain
  assert schema.improvement(5.0, 4.0, "lsd_hf") == -0.25
  assert schema.improvement(12.5, 10.0, "snr") == 2.5 and schema.improvement(1.0, 3.0, "si_sdr") == -2.0
  assert schema.improvement(0.9, 0.8, "stoi") == pytest.approx(0.1)
  assert schema.improvement(None, 1.0, "lsd") is None and schema.improvement(1.0, 0.0, "lsd") is None
