"""Tests for sr_jax/train/writer.py: event files read back record by record, history file, process gating."""

import glob
import io
import json
import os
import struct
import sys

import numpy as np
import pytest
import soundfile
from PIL import Image
from tensorboardX.proto import event_pb2

from sr_jax.train import writer as writer_lib


def _read_events(logdir):
  """All Event protos of the event files in `logdir`, from the TFRecord framing (len, crc, data, crc)."""
  events = []
  for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
    with open(path, "rb") as f:
      data = f.read()
    pos = 0
    while pos < len(data):
      (length,) = struct.unpack("<Q", data[pos:pos + 8])
      pos += 12
      events.append(event_pb2.Event.FromString(data[pos:pos + length]))
      pos += length + 4
    assert pos == len(data)
  return events


def _values(events):
  """(step, Summary.Value) for every summary value in `events`."""
  return [(e.step, v) for e in events if e.HasField("summary") for v in e.summary.value]


def test_scalars_images_audio_texts_round_trip(tmp_path):
  w = writer_lib.TensorBoardXWriter(str(tmp_path))
  w.write_scalars(3, {"train/loss": 0.25, "train/lr": np.float32(1e-3)})
  w.write_scalars(7, {"train/loss": np.array(0.125)})
  gray = np.linspace(0.0, 1.0, 6 * 5).reshape(6, 5, 1)
  w.write_images(7, {"spec": gray, "batch": np.zeros((2, 4, 3, 3), np.uint8)})
  t = np.arange(800) / 8000
  tone = 0.5 * np.sin(2 * np.pi * 440 * t)
  w.write_audios(7, {"mono": tone, "stereo": np.stack([tone, -tone], -1)[None]}, sample_rate=8000)
  w.write_texts(7, {"note": "hello"})
  w.write_histograms(7, {"weights": np.arange(10.0)})
  w.close()

  values = _values(_read_events(str(tmp_path)))
  scalars = [(s, v.tag, v.simple_value) for s, v in values if v.HasField("simple_value")]
  assert scalars == [(3, "train/loss", 0.25), (3, "train/lr", pytest.approx(1e-3)), (7, "train/loss", 0.125)]

  images = {v.tag: v.image for s, v in values if v.HasField("image")}
  assert sorted(images) == ["batch/0", "batch/1", "spec"]
  decoded = np.asarray(Image.open(io.BytesIO(images["spec"].encoded_image_string)))
  assert (images["spec"].height, images["spec"].width) == (6, 5)
  np.testing.assert_array_equal(decoded[..., 0], np.round(gray[..., 0] * 255).astype(np.uint8))

  audios = {v.tag: v.audio for s, v in values if v.HasField("audio")}
  assert sorted(audios) == ["mono", "stereo"]
  assert (audios["mono"].sample_rate, audios["mono"].num_channels, audios["mono"].length_frames) == (8000, 1, 800)
  assert audios["stereo"].num_channels == 2
  wav, rate = soundfile.read(io.BytesIO(audios["stereo"].encoded_audio_string))
  assert rate == 8000 and wav.shape == (800, 2)
  np.testing.assert_allclose(wav[:, 0], tone, atol=1 / 16000)  # 16-bit PCM
  np.testing.assert_allclose(wav[:, 1], -tone, atol=1 / 16000)

  texts = [v.tag for s, v in values if v.tag.startswith("note")]
  assert texts, "text summary missing"
  hist = [v.histo for s, v in values if v.HasField("histo")]
  assert len(hist) == 1 and hist[0].num == 10 and hist[0].sum == 45.0
  assert "tensorflow" not in sys.modules


def test_audio_is_clipped_and_bad_shapes_rejected(tmp_path):
  w = writer_lib.TensorBoardXWriter(str(tmp_path))
  w.write_audios(0, {"loud": np.full((100, 1), 3.0)}, sample_rate=1000)
  with pytest.raises(ValueError, match="audio must be"):
    w.write_audios(0, {"bad": np.zeros((1, 10, 5))}, sample_rate=1000)
  with pytest.raises(ValueError, match="images must be"):
    w.write_images(0, {"bad": np.zeros((4, 4, 2))})
  w.close()
  (audio,) = [v.audio for _, v in _values(_read_events(str(tmp_path))) if v.HasField("audio")]
  wav, _ = soundfile.read(io.BytesIO(audio.encoded_audio_string))
  assert np.max(wav) == pytest.approx(1.0, abs=1e-4)


def test_hparams_flattened_into_plugin_record(tmp_path):
  from tensorboardX.proto import plugin_hparams_pb2  # pylint: disable=import-outside-toplevel

  w = writer_lib.TensorBoardXWriter(str(tmp_path))
  w.write_hparams({"model": {"depth": 4, "dtype": "float32"}, "lr": 1e-3, "shape": (2, 3)})
  w.close()
  (start,) = [v for _, v in _values(_read_events(str(tmp_path))) if v.tag == "_hparams_/session_start_info"]
  data = plugin_hparams_pb2.HParamsPluginData.FromString(start.metadata.plugin_data.content)
  hp = data.session_start_info.hparams
  assert hp["model.depth"].number_value == 4
  assert hp["model.dtype"].string_value == "float32"
  assert hp["lr"].number_value == pytest.approx(1e-3)
  assert hp["shape"].string_value == "(2, 3)"


def test_create_writer_history_and_resume(tmp_path):
  w = writer_lib.create_writer(str(tmp_path), process_index=0)
  w.write_scalars(1, {"loss": 4.0})
  w.write_scalars(2, {"loss": 3.0, "eval/snr": 10.0})
  w.write_images(2, {"img": np.zeros((3, 3, 3))})
  w.flush()
  lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [(r["step"], r["scalars"]) for r in lines] == [(1, {"loss": 4.0}), (2, {"loss": 3.0, "eval/snr": 10.0})]
  w.close()
  assert len(glob.glob(str(tmp_path / "events.out.tfevents.*"))) == 1

  # A resumed run re-logs step 2 and goes on; the history keeps the earlier records and the last value per step.
  w = writer_lib.create_writer(str(tmp_path), process_index=0)
  w.write_scalars(2, {"loss": 2.5})
  w.write_scalars(3, {"loss": 2.0})
  w.close()
  history = writer_lib.read_history(str(tmp_path))
  np.testing.assert_array_equal(history["loss"][0], [1, 2, 3])
  np.testing.assert_array_equal(history["loss"][1], [4.0, 2.5, 2.0])
  np.testing.assert_array_equal(history["eval/snr"][0], [2])
  assert writer_lib.read_history(str(tmp_path / "metrics.jsonl")).keys() == history.keys()
  assert writer_lib.read_history(str(tmp_path / "nothing_here")) == {}


def test_create_writer_gating(tmp_path):
  for kwargs in ({"process_index": 1}, {"enabled": False, "process_index": 0}):
    w = writer_lib.create_writer(str(tmp_path / "x"), **kwargs)
    assert isinstance(w, writer_lib.NullWriter)
    w.write_scalars(0, {"loss": 1.0})
    w.close()
  assert not (tmp_path / "x").exists()

  w = writer_lib.create_writer(str(tmp_path / "y"), just_logging=True, process_index=0)
  assert isinstance(w, writer_lib.LoggingWriter)
  assert not (tmp_path / "y").exists()
  assert isinstance(w, writer_lib.MetricWriter)
  assert writer_lib.MetricWriter.__module__ == "clu.metric_writers.interface"
  w = writer_lib.create_writer(str(tmp_path / "z"))  # process_index defaults to jax.process_index() == 0
  assert isinstance(w, writer_lib.MultiWriter)
  w.close()
  assert (tmp_path / "z").is_dir()
  assert "tensorflow" not in sys.modules

