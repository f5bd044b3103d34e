"""The torchcodec backend (`--decoder torchcodec`): on the CPU its frames must equal decord's, bit for bit, on real
ffmpeg-encoded files; it reads what decord cannot; it runs in the killable decode workers; NVDEC when a GPU is there."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.media.corpus import CorpusFile
from indexer.media.decode import decode
from indexer.media.errors import MediaError
from indexer.media.request import DecodeRequest
from indexer.media.workers import DecodePool

from .test_decode import assert_pattern

pytest.importorskip("torchcodec.decoders", reason="torchcodec is not installed (the ray/test extras install it)")

SAME_AS_DECORD = ["h264.mp4", "hevc.mp4", "vp9.webm", "mjpeg.avi", "vidéo ☃ 東京.mp4", "vfr.mp4", "one-frame.mp4"]


@pytest.fixture
def on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU path even on a GPU machine: equality with decord is a CPU property (NVDEC converts colours itself)."""
    monkeypatch.setenv("MPLUG2_SEARCH_DECODE_DEVICE", "cpu")


@pytest.mark.parametrize("name", SAME_AS_DECORD)
def test_frames_equal_decords_on_cpu(corpus: dict[str, CorpusFile], name: str, on_cpu: None) -> None:
    spans = ((0.0, 1.0), (1.0, None), (0.0, None))
    wanted = decode(DecodeRequest(str(corpus[name].path), spans=spans, num_frames=8, backend="decord"))
    got = decode(DecodeRequest(str(corpus[name].path), spans=spans, num_frames=8, backend="torchcodec"))
    assert got.backend == "torchcodec", "torchcodec itself decoded the file, not the ffmpeg fallback"
    for mine, theirs in zip(got.spans, wanted.spans, strict=True):
        # decord reports times in float32, the packets in float64: the same frames, a rounding apart.
        assert mine.timestamps == pytest.approx(theirs.timestamps, abs=1e-5)
        assert mine.frames.dtype == np.uint8
        np.testing.assert_array_equal(mine.frames, theirs.frames)


def test_resized_for_the_model_like_decord(corpus: dict[str, CorpusFile], on_cpu: None) -> None:
    request = {"path": str(corpus["h264.mp4"].path), "num_frames": 4, "size": 32, "thumbnail_side": 48}
    mine, theirs = (decode(DecodeRequest(**request, backend=b)).spans[0] for b in ("torchcodec", "decord"))
    assert mine.frames.shape == (4, 32, 32, 3)
    np.testing.assert_array_equal(mine.frames, theirs.frames)
    assert mine.thumbnail == theirs.thumbnail


@pytest.mark.parametrize("name", ["av1.mkv", "vp9-realtime.webm"])
def test_reads_files_decord_cannot(corpus: dict[str, CorpusFile], name: str, on_cpu: None) -> None:
    if name not in corpus:
        pytest.skip(f"this ffmpeg build cannot encode {name}")
    result = decode(DecodeRequest(str(corpus[name].path), num_frames=4, backend="torchcodec"))
    assert result.backend == "torchcodec"
    (span,) = result.spans
    assert_pattern(span.frames, [round(t * 10) for t in span.timestamps])


@pytest.mark.parametrize("max_side", [1920, 48])
def test_rotation_is_honoured_and_large_frames_are_capped(
    corpus: dict[str, CorpusFile], max_side: int, on_cpu: None
) -> None:
    request = DecodeRequest(str(corpus["rotated-90.mp4"].path), num_frames=2, backend="torchcodec", max_side=max_side)
    result = decode(request)
    assert result.backend == "torchcodec"
    frame = result.spans[0].frames[0]
    height, width = (96, 48) if max_side > 96 else (48, 24)
    assert frame.shape == (height, width, 3)
    assert frame[:, : width // 8, 1].mean() > 180, "the green band (stored on top) runs down the left side"
    assert frame[-height // 16 :, width // 4 :, 0].mean() > 180, "the red band (stored on the left) along the bottom"


def test_damage_falls_back_to_ffmpeg_per_span(corpus: dict[str, CorpusFile], on_cpu: None) -> None:
    spans = ((0.0, 3.0), (3.0, 6.0), (6.0, 9.0), (9.0, 12.0))
    result = decode(
        DecodeRequest(str(corpus["garbage-in-middle.mp4"].path), spans=spans, num_frames=4, backend="torchcodec")
    )
    first, last = result.spans[0], result.spans[-1]
    assert first.error is None and last.error is None
    assert_pattern(first.frames, [round(t * 10) for t in first.timestamps])
    assert_pattern(last.frames, [round(t * 10) for t in last.timestamps])


def test_in_the_killable_workers_a_bad_file_fails_alone(corpus: dict[str, CorpusFile], on_cpu: None) -> None:
    names = ["h264.mp4", "truncated-before-moov.mp4", "vp9.webm"]
    requests = [DecodeRequest(str(corpus[n].path), num_frames=4, backend="torchcodec", tag=n) for n in names]
    with DecodePool(workers=1, timeout_s=60, memory_limit_mb=2048, address_space_backstop=False) as pool:
        outcomes = {request.tag: outcome for request, outcome in pool.imap(requests)}
    assert isinstance(outcomes["truncated-before-moov.mp4"], MediaError)
    assert outcomes["truncated-before-moov.mp4"].code == "corrupt"
    for name in ("h264.mp4", "vp9.webm"):
        assert outcomes[name].backend == "torchcodec"
        assert_pattern(outcomes[name].spans[0].frames, [round(t * 10) for t in outcomes[name].spans[0].timestamps])


@pytest.mark.gpu
def test_nvdec_frames_match_the_cpu_path(corpus: dict[str, CorpusFile], monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    path = str(corpus["h264.mp4"].path)
    monkeypatch.setenv("MPLUG2_SEARCH_DECODE_DEVICE", "cpu")
    cpu = decode(DecodeRequest(path, num_frames=8, backend="torchcodec")).spans[0]
    monkeypatch.setenv("MPLUG2_SEARCH_DECODE_DEVICE", "cuda")
    gpu = decode(DecodeRequest(path, num_frames=8, backend="torchcodec")).spans[0]
    assert gpu.timestamps == cpu.timestamps
    # NVDEC converts YUV to RGB with its own kernels: the same frames, a few levels apart at most.
    assert np.abs(gpu.frames.astype(int) - cpu.frames.astype(int)).mean() < 3
    assert_pattern(gpu.frames, [round(t * 10) for t in gpu.timestamps])


def test_index_decoder_torchcodec_gives_the_vectors_decord_gives(
    corpus: dict[str, CorpusFile], tmp_path, tiny_model_dir, on_cpu: None
) -> None:
    """`index --decoder torchcodec` reaches the decoders: the archive's vectors are those of the default decoder."""
    import shutil

    from indexer.indexing.pipeline import IndexOptions, index_paths
    from indexer.settings import load_settings
    from indexer.store.archive import Archive
    from mplug2 import load_model_bundle

    folder = tmp_path / "media"
    folder.mkdir()
    for name in ("h264.mp4", "hevc.mp4"):
        shutil.copy(corpus[name].path, folder / name)
    bundle = load_model_bundle(tiny_model_dir, with_fusion=False)
    vectors = {}
    for decoder in ("auto", "torchcodec"):
        settings = load_settings(f"sqlite:///{tmp_path / decoder / 'db.sqlite'}", tmp_path / decoder / "index")
        summary = index_paths([folder], settings, bundle, IndexOptions(progress=False, decoder=decoder, workers=1))
        assert summary.indexed == 2 and summary.failed == 0
        assert dict(summary.decoders) == {"decord" if decoder == "auto" else decoder: 2}
        archive = Archive(settings)
        ids, feats = archive.store.itc()
        vectors[decoder] = feats[np.argsort(ids)]
        archive.close()
    np.testing.assert_allclose(vectors["torchcodec"], vectors["auto"], atol=1e-6)
