"""Readers for the benchmarks' annotation files, as the community distributes them. Each returns a
`RetrievalBenchmark`; media paths resolve under the media folder (with the extension found on disk when the
annotations omit it)."""

from __future__ import annotations

import csv
import json
import pickle
from collections.abc import Callable
from pathlib import Path

from indexer.evaluation.benchmark import RetrievalBenchmark, RetrievalItem

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg")


def resolve_media(media_dir: Path, name: str, extensions: tuple[str, ...] = VIDEO_EXTENSIONS) -> Path:
    """`media_dir / name`, or with the first extension that exists when `name` has none on disk."""
    path = media_dir / name
    if path.exists() or path.suffix.lower() in (*extensions, ".jpg", ".jpeg", ".png"):
        return path
    for extension in extensions:
        if (candidate := path.with_name(path.name + extension)).exists():
            return candidate
    return path


def read_rows(path: Path) -> list[dict]:
    """A json list, or jsonl."""
    text = path.read_text()
    if text.lstrip().startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def from_captioned_rows(name: str, rows: list[dict], media_dir: Path, paragraph: bool = False) -> RetrievalBenchmark:
    """Rows `{"video"|"clip_name"|"image": path, "caption": str | [str], "start"?, "end"?, "attributes"?}`:
    one text per caption (or, for paragraph retrieval, all of an item's captions joined into one)."""
    items: list[RetrievalItem] = []
    texts: list[str] = []
    truths: list[list[int]] = []
    attributes: list[dict] = []
    for row in rows:
        key = row.get("video") or row.get("clip_name") or row.get("image")
        if key is None or "caption" not in row:
            raise ValueError(f"{name}: a row without video/clip_name/image or caption: {str(row)[:120]}")
        kind = "image" if "image" in row else "video"
        path = resolve_media(media_dir, key) if kind == "video" else media_dir / key
        items.append(RetrievalItem(key, path, kind, float(row.get("start", 0.0)), row.get("end")))
        captions = row["caption"] if isinstance(row["caption"], list) else [row["caption"]]
        if paragraph:
            captions = [" ".join(captions)]
        for caption in captions:
            texts.append(caption)
            truths.append([len(items) - 1])
            attributes.append(row.get("attributes", {}))
    return RetrievalBenchmark(name, items, texts, truths, text_attributes=attributes)


def load_jsonl(annotations: Path, media_dir: Path) -> RetrievalBenchmark:
    return from_captioned_rows("jsonl", read_rows(annotations), media_dir)


def _csv_rows(path: Path, delimiter: str = ",") -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter=delimiter))


def load_msrvtt(annotations: Path, media_dir: Path) -> RetrievalBenchmark:
    """MSR-VTT 1k-A test: CLIP4Clip's MSRVTT_JSFUSION_test.csv (key, vid_key, video_id, sentence), or the
    mPLUG/mPLUG-2 jsonl (video, caption)."""
    if annotations.suffix.lower() == ".csv":
        rows = _csv_rows(annotations)
        if rows and not {"video_id", "sentence"} <= rows[0].keys():
            raise ValueError(f"{annotations}: expected the columns video_id and sentence (CLIP4Clip's 1k-A csv)")
        rows = [{"video": row["video_id"], "caption": row["sentence"]} for row in rows]
    else:
        rows = read_rows(annotations)
    return from_captioned_rows("msrvtt-1ka", rows, media_dir)


def _paragraphs(rows: list[dict], key: str, text: str) -> list[dict]:
    """One row per video with all its sentences, in order of first appearance."""
    grouped: dict[str, list[str]] = {}
    for row in rows:
        sentences = row[text] if isinstance(row[text], list) else [row[text]]
        grouped.setdefault(row[key], []).extend(sentences)
    return [{"video": video, "caption": sentences} for video, sentences in grouped.items()]


def load_didemo(annotations: Path, media_dir: Path) -> RetrievalBenchmark:
    """DiDeMo as paragraph-to-video retrieval: the mPLUG-2 jsonl (video, caption list) or the original
    test_data.json (one row per moment: video, description, times)."""
    rows = read_rows(annotations)
    if rows and "description" in rows[0]:
        rows = _paragraphs(rows, "video", "description")
    return from_captioned_rows("didemo", rows, media_dir, paragraph=True)


def _index_by_stem(media_dir: Path) -> dict[str, Path]:
    """Every video under `media_dir` (any depth) by file name without extension."""
    return {
        path.stem: path
        for path in sorted(media_dir.rglob("*"))
        if path.suffix.lower() in VIDEO_EXTENSIONS and path.is_file()
    }


def load_lsmdc(annotations: Path, media_dir: Path) -> RetrievalBenchmark:
    """LSMDC 1k test: LSMDC16_challenge_1000_publictect.csv, tab-separated without a header (clip id, four
    times, sentence); clips live in per-movie folders, found by name at any depth."""
    found = _index_by_stem(media_dir)
    rows = []
    with annotations.open(newline="") as handle:
        for number, fields in enumerate(csv.reader(handle, delimiter="\t"), 1):
            if not fields or not fields[0].strip():
                continue
            if len(fields) < 6:
                raise ValueError(f"{annotations}:{number}: expected 6 tab-separated fields, found {len(fields)}")
            clip = fields[0].strip()
            path = found.get(clip)
            rows.append({"video": str(path.relative_to(media_dir)) if path else clip, "caption": fields[-1].strip()})
    return from_captioned_rows("lsmdc", rows, media_dir)


class _CaptionUnpickler(pickle.Unpickler):
    """raw-captions.pkl holds only dicts, lists and strings: refuse anything else (a pickle can run code)."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a caption file")


def load_msvd(annotations: Path, media_dir: Path) -> RetrievalBenchmark:
    """MSVD test: raw-captions.pkl ({video id: [token lists]}) with test_list.txt beside it; every caption is a
    query and each video has many (video-to-text counts the best-ranked one, as the official recipe)."""
    with annotations.open("rb") as handle:
        captions = _CaptionUnpickler(handle).load()
    test_list = annotations.with_name("test_list.txt")
    if not test_list.is_file():
        raise ValueError(f"{annotations}: MSVD needs test_list.txt in the same folder (the test video ids)")
    rows = []
    for video in (line.strip() for line in test_list.read_text().splitlines()):
        if video:
            sentences = [" ".join(tokens) if isinstance(tokens, list) else str(tokens) for tokens in captions[video]]
            rows.append({"video": video, "caption": sentences})
    return from_captioned_rows("msvd", rows, media_dir)


def load_activitynet(annotations: Path, media_dir: Path) -> RetrievalBenchmark:
    """ActivityNet Captions val_1.json ({video id: {duration, timestamps, sentences}}) as paragraph retrieval."""
    data = json.loads(annotations.read_text())
    rows = [{"video": video, "caption": [s.strip() for s in entry["sentences"]]} for video, entry in data.items()]
    return from_captioned_rows("activitynet", rows, media_dir, paragraph=True)


def _karpathy(name: str, annotations: Path, media_dir: Path) -> RetrievalBenchmark:
    """The Karpathy test split: ALBEF/mPLUG's list ({image, caption: [5]}) or the original dataset_*.json
    ({images: [{filepath?, filename, split, sentences: [{raw}]}]}, test split only)."""
    data = json.loads(annotations.read_text())
    if isinstance(data, dict):
        data = [
            {
                "image": f"{image['filepath']}/{image['filename']}" if image.get("filepath") else image["filename"],
                "caption": [sentence["raw"] for sentence in image["sentences"]],
            }
            for image in data["images"]
            if image.get("split") == "test"
        ]
    return from_captioned_rows(name, data, media_dir)


def load_coco(annotations: Path, media_dir: Path) -> RetrievalBenchmark:
    return _karpathy("coco", annotations, media_dir)


def load_flickr30k(annotations: Path, media_dir: Path) -> RetrievalBenchmark:
    return _karpathy("flickr30k", annotations, media_dir)


READERS: dict[str, Callable[[Path, Path], RetrievalBenchmark]] = {
    "msrvtt-1ka": load_msrvtt,
    "didemo": load_didemo,
    "lsmdc": load_lsmdc,
    "msvd": load_msvd,
    "activitynet": load_activitynet,
    "coco": load_coco,
    "flickr30k": load_flickr30k,
    "jsonl": load_jsonl,
}


def load_benchmark(name: str, annotations: str | Path, media_dir: str | Path) -> RetrievalBenchmark:
    if name not in READERS:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(sorted(READERS))}")
    annotations = Path(annotations)
    if not annotations.is_file():
        raise ValueError(f"{annotations}: no such annotation file")
    try:
        return READERS[name](annotations, Path(media_dir))
    except (
        KeyError,
        TypeError,
        AttributeError,
        json.JSONDecodeError,
        UnicodeDecodeError,
        pickle.UnpicklingError,
    ) as error:
        # str, not repr: a decode error's repr holds the whole file (megabytes for an image given by mistake)
        reason = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
        raise ValueError(
            f"{annotations}: not an annotation file of {name} as distributed ({reason}); see README's Evaluation "
            "table for the files each --benchmark reads"
        ) from None
