"""probe() on every corpus file: the right kind and facts, or the right typed error, decided by content."""

from __future__ import annotations

import os

import pytest

from indexer.media.corpus import CorpusFile
from indexer.media.errors import MediaError
from indexer.media.probe import MediaKind, probe


def test_every_corpus_file_probes_as_expected(corpus: dict[str, CorpusFile]) -> None:
    for name, file in corpus.items():
        if name == "unreadable.mp4" and os.geteuid() == 0:
            continue  # root reads mode-000 files; test_unreadable_file_as_another_user covers it
        if file.expect in ("video", "image"):
            info = probe(file.path)
            assert info.kind is MediaKind(file.expect), name
        else:
            with pytest.raises(MediaError) as raised:
                probe(file.path)
            assert raised.value.code == file.expect, f"{name}: {raised.value}"
            assert str(file.path) in str(raised.value), "the message names the file"


def test_video_facts(corpus: dict[str, CorpusFile]) -> None:
    info = probe(corpus["h264.mp4"].path)
    assert (info.width, info.height, info.codec, info.frame_count) == (96, 64, "h264", 20)
    assert info.duration == pytest.approx(2.0, abs=0.05)
    assert info.fps == pytest.approx(10.0)


def test_rotation_is_reported_and_sizes_are_as_displayed(corpus: dict[str, CorpusFile]) -> None:
    info = probe(corpus["rotated-90.mp4"].path)
    assert info.rotation == 90
    assert (info.width, info.height) == (48, 96)


def test_a_jpeg_named_mp4_is_an_image(corpus: dict[str, CorpusFile]) -> None:
    info = probe(corpus["photo-named-as-video.mp4"].path)
    assert (info.kind, info.width, info.height, info.frame_count) == (MediaKind.IMAGE, 120, 80, 1)


def test_unreadable_file_as_another_user(corpus: dict[str, CorpusFile]) -> None:
    """Mode 000 means nothing to root, so check it for real in a child that drops to `nobody`."""
    path = corpus["unreadable.mp4"].path
    if os.geteuid() != 0:
        with pytest.raises(MediaError) as raised:
            probe(path)
        assert raised.value.code == "unreadable"
        return
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop privileges, probe, report the error code through the pipe
        code = b"no error"
        try:
            os.setgid(65534)
            os.setuid(65534)
            probe(path)
        except MediaError as error:
            code = error.code.encode()
        finally:
            os.write(write_end, code)
            os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    assert os.read(read_end, 100) == b"unreadable"


def test_probe_command_reports_files_and_errors(corpus: dict[str, CorpusFile]) -> None:
    import json

    from click.testing import CliRunner

    from indexer.cli import cli

    paths = [str(corpus["h264.mp4"].path), str(corpus["notes.mp4"].path)]
    result = CliRunner().invoke(cli, ["probe", "--json", *paths])
    assert result.exit_code == 0, result.output
    good, bad = (json.loads(line) for line in result.output.splitlines())
    assert (good["kind"], good["width"], good["frame_count"]) == ("video", 96, 20)
    assert bad["error"] == "not_media" and "notes.mp4" in bad["message"]
