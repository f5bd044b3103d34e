"""encode_frames writes a real file that ffprobe reads back with the right size and frame count."""

import json
import subprocess
from pathlib import Path

import numpy as np

from indexer.media.encode import encode_frames, has_encoder


def test_encoded_file_has_the_frames_we_wrote(tmp_path: Path) -> None:
    frames = [np.full((48, 64, 3), i * 20, dtype=np.uint8) for i in range(10)]
    out = encode_frames(frames, tmp_path / "grey ramp.mp4", fps=10)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    stream = json.loads(probe.stdout)["streams"][0]
    assert (stream["width"], stream["height"], stream["codec_name"]) == (64, 48, "h264")
    assert int(stream["nb_read_frames"]) == 10


def test_has_encoder_knows_x264_and_rejects_nonsense() -> None:
    assert has_encoder("libx264")
    assert not has_encoder("no-such-encoder")
