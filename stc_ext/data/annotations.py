"""Annotation formats: which videos belong to a split, and their labels.

Each reader returns an :class:`Annotation` (records of ``(path, label)`` plus the class names)
and validates as it goes, naming the file and line of any problem. Paths are *not* checked for
existence here; :meth:`Annotation.check_files` does that for all of them at once (the dataset calls
it before training starts). A listed ``.../v_X.avi`` that is absent resolves to a frame folder
``.../v_X/`` beside it (the layout 3D-ResNets users already have, and ``stc prepare --mode
frames`` writes) or else to ``.../v_X.mp4`` (what ``stc prepare --mode resize`` writes), so the
same annotation files read a prepared tree.

Supported: UCF101 (:func:`read_ucf101`), HMDB51 (:func:`read_hmdb51`), Kinetics-400 CSV
(:func:`read_kinetics_csv`), a generic ``path label`` list (:func:`read_list_file`), and an
unlabeled folder of videos (:func:`read_video_folder`).
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from .decode import VIDEO_EXTENSIONS
from .errors import AnnotationError, MissingFilesError
from .prepare import PREPARED_VIDEO_SUFFIX

__all__ = [
    "UNLABELED",
    "Annotation",
    "VideoRecord",
    "read_hmdb51",
    "read_kinetics_csv",
    "read_list_file",
    "read_ucf101",
    "read_video_folder",
]

logger = logging.getLogger(__name__)

#: The label of a video without one (unlabeled sources, Kinetics test CSVs).
UNLABELED = -1


@dataclass(frozen=True)
class VideoRecord:
    """One video: a file or a frame folder, and its class index (:data:`UNLABELED` if none)."""

    path: Path
    label: int = UNLABELED


@dataclass
class Annotation:
    """The videos of one split and the class names their labels index.

    Attributes:
        records: the videos, in annotation order.
        classes: ``classes[label]`` is the name of class ``label``; empty when unlabeled.
        name: what was read, for messages (e.g. ``"UCF101 split 1 train (.../trainlist01.txt)"``).
    """

    records: list[VideoRecord]
    classes: list[str] = field(default_factory=list)
    name: str = "annotation"

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[VideoRecord]:
        return iter(self.records)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def check_files(self, strict: bool = False) -> Annotation:
        """Resolve every record to an existing file or frame folder, reporting the absent ones.

        Args:
            strict: raise :class:`MissingFilesError` listing every absent video; otherwise log one
                warning listing them and drop them.

        Returns:
            A new :class:`Annotation` with resolved paths and no missing records. A listed file
            that is absent is replaced by the folder ``path`` without its suffix, else by
            ``path`` with the suffix ``.mp4`` (prepared trees), where those exist.

        Raises:
            MissingFilesError: ``strict`` and some are absent, or none at all exists.
        """
        kept: list[VideoRecord] = []
        missing: list[Path] = []
        for rec in self.records:
            path = _resolve(rec.path)
            if path is None:
                missing.append(rec.path)
            else:
                kept.append(rec if path == rec.path else replace(rec, path=path))
        if missing and (strict or not kept):
            raise MissingFilesError(missing, self.name)
        if missing:
            shown = "\n  ".join(str(p) for p in missing[:20])
            more = f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else ""
            logger.warning(
                "%s: %d of %d listed videos not found; they are left out:\n  %s%s",
                self.name,
                len(missing),
                len(self.records),
                shown,
                more,
            )
        return Annotation(kept, list(self.classes), self.name)


def _resolve(path: Path) -> Path | None:
    if path.is_file():
        return path
    if path.is_dir():
        return path
    if path.suffix and path.with_suffix("").is_dir():
        return path.with_suffix("")
    if path.suffix and path.with_suffix(PREPARED_VIDEO_SUFFIX).is_file():
        return path.with_suffix(PREPARED_VIDEO_SUFFIX)
    return None


def _check_split(reader: str, split: int) -> None:
    if split not in (1, 2, 3):
        raise ValueError(f"{reader}: split must be 1, 2 or 3, got {split!r}")


def _check_subset(reader: str, subset: str, allowed: Sequence[str]) -> None:
    if subset not in allowed:
        raise ValueError(f"{reader}: subset must be one of {list(allowed)}, got {subset!r}")


def _lines(path: Path, reader: str) -> Iterator[tuple[int, str]]:
    """Non-empty, non-comment lines with their 1-based numbers."""
    if not path.is_file():
        raise AnnotationError(f"{reader}: file not found: {path}")
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if line and not line.startswith("#"):
                yield number, line


def _nonempty(records: list[VideoRecord], what: str) -> None:
    if not records:
        raise AnnotationError(f"{what}: the split lists no videos")


def _class_index(classes: Sequence[str]) -> dict[str, int]:
    return {name: i for i, name in enumerate(classes)}


def _unknown_class(name: str, where: str, classes: Sequence[str]) -> AnnotationError:
    shown = ", ".join(classes[:10]) + (", ..." if len(classes) > 10 else "")
    return AnnotationError(f"{where}: unknown class {name!r} (known: {shown})")


# ---------------------------------------------------------------------------- UCF101


def read_ucf101_classes(split_dir: str | Path) -> list[str]:
    """Read UCF101's ``classInd.txt`` (``"1 ApplyEyeMakeup"`` per line): names by 0-based index."""
    path = Path(split_dir) / "classInd.txt"
    entries: dict[int, str] = {}
    for number, line in _lines(path, "read_ucf101"):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise AnnotationError(f"{path}:{number}: expected '<index> <ClassName>', got {line!r}")
        index, name = int(parts[0]), parts[1]
        if index in entries:
            raise AnnotationError(f"{path}:{number}: class index {index} appears twice")
        entries[index] = name
    if not entries:
        raise AnnotationError(f"{path}: lists no classes")
    if sorted(entries) != list(range(1, len(entries) + 1)):
        raise AnnotationError(
            f"{path}: class indices must be 1..{len(entries)} without gaps, got "
            f"{sorted(entries)[:5]}..."
        )
    names = [entries[i] for i in range(1, len(entries) + 1)]
    if len(set(names)) != len(names):
        raise AnnotationError(f"{path}: a class name appears twice")
    return names


def read_ucf101(
    video_root: str | Path, split_dir: str | Path, split: int = 1, subset: str = "train"
) -> Annotation:
    """Read a UCF101 split.

    Args:
        video_root: the folder holding ``<ClassName>/v_<ClassName>_gXX_cYY.avi`` (or frame
            folders ``<ClassName>/v_..._cYY/``).
        split_dir: the folder holding ``classInd.txt``, ``trainlist0{1,2,3}.txt`` and
            ``testlist0{1,2,3}.txt``.
        split: 1, 2 or 3.
        subset: ``"train"`` (``trainlistNN.txt``, ``path label`` with 1-based labels) or
            ``"test"`` (``testlistNN.txt``, ``path``; the label is the class folder's).

    Raises:
        ValueError: bad ``split``/``subset``.
        AnnotationError: a missing or malformed file, an unknown class name, a label that
            disagrees with the class folder, or an empty split.
    """
    _check_split("read_ucf101", split)
    _check_subset("read_ucf101", subset, ("train", "test"))
    split_dir, video_root = Path(split_dir), Path(video_root)
    classes = read_ucf101_classes(split_dir)
    index = _class_index(classes)
    list_path = split_dir / f"{subset}list0{split}.txt"
    records = []
    for number, line in _lines(list_path, "read_ucf101"):
        parts = line.split()
        where = f"{list_path}:{number}"
        if len(parts) not in (1, 2):
            raise AnnotationError(f"{where}: expected '<Class>/<video> [label]', got {line!r}")
        rel = parts[0]
        folder = rel.replace("\\", "/").split("/")[0] if "/" in rel or "\\" in rel else None
        label = None
        if len(parts) == 2:
            if not parts[1].isdigit() or not 1 <= int(parts[1]) <= len(classes):
                raise AnnotationError(
                    f"{where}: label must be an integer in 1..{len(classes)}, got {parts[1]!r}"
                )
            label = int(parts[1]) - 1
        if folder is not None:
            if folder not in index:
                raise _unknown_class(folder, where, classes)
            if label is not None and index[folder] != label:
                raise AnnotationError(
                    f"{where}: label {label + 1} ({classes[label]}) disagrees with the class "
                    f"folder {folder!r}"
                )
            label = index[folder]
        if label is None:
            raise AnnotationError(f"{where}: no label and no class folder in {rel!r}")
        records.append(VideoRecord(video_root / rel, label))
    name = f"UCF101 split {split} {subset} ({list_path})"
    _nonempty(records, name)
    return Annotation(records, classes, name)


# ---------------------------------------------------------------------------- HMDB51

_HMDB_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<split>[123])\.txt$")


def read_hmdb51(
    video_root: str | Path, split_dir: str | Path, split: int = 1, subset: str = "train"
) -> Annotation:
    """Read an HMDB51 split (``testTrainMulti_7030_splits``).

    Args:
        video_root: the folder holding ``<class>/<video>.avi`` (or frame folders).
        split_dir: the folder holding ``<class>_test_split{1,2,3}.txt``; each line is
            ``<video>.avi <id>`` with id 1 = train, 2 = test, 0 = unused.
        split: 1, 2 or 3.
        subset: ``"train"`` (id 1) or ``"test"`` (id 2).

    Classes are the split files' class names in sorted order (the usual HMDB51 indexing).
    """
    _check_split("read_hmdb51", split)
    _check_subset("read_hmdb51", subset, ("train", "test"))
    split_dir, video_root = Path(split_dir), Path(video_root)
    if not split_dir.is_dir():
        raise AnnotationError(f"read_hmdb51: split folder not found: {split_dir}")
    files = {}
    for entry in os.listdir(split_dir):
        m = _HMDB_FILE.match(entry)
        if m and int(m["split"]) == split:
            files[m["cls"]] = split_dir / entry
    if not files:
        raise AnnotationError(
            f"read_hmdb51: no '<class>_test_split{split}.txt' files in {split_dir}"
        )
    classes = sorted(files)
    wanted = "1" if subset == "train" else "2"
    records = []
    for label, cls in enumerate(classes):
        for number, line in _lines(files[cls], "read_hmdb51"):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise AnnotationError(
                    f"{files[cls]}:{number}: expected '<video> <0|1|2>', got {line!r}"
                )
            if parts[1] == wanted:
                records.append(VideoRecord(video_root / cls / parts[0], label))
    name = f"HMDB51 split {split} {subset} ({split_dir})"
    _nonempty(records, name)
    return Annotation(records, classes, name)


# ---------------------------------------------------------------------------- Kinetics


def read_kinetics_csv(
    csv_path: str | Path,
    video_root: str | Path,
    subset: str | None = None,
    classes: Sequence[str] | None = None,
    ext: str = ".mp4",
) -> Annotation:
    """Read a Kinetics-400 CSV (``label,youtube_id,time_start,time_end,split``).

    Videos are ``<video_root>/<label>/<youtube_id>_<start:06d>_<end:06d><ext>``; a class folder
    named with underscores for spaces (``playing_guitar``) is found too. Rows without a label
    (test CSVs) become :data:`UNLABELED` videos directly under ``video_root``.

    Args:
        csv_path: the CSV file.
        video_root: the folder holding the class folders.
        subset: keep only rows whose ``split`` column equals this (``train``, ``val``/
            ``validate``, ``test``); ``None`` keeps every row.
        classes: the class names defining label indices (pass the training set's classes when
            reading the validation CSV); default: the CSV's labels, sorted.
        ext: the video files' extension.

    Raises:
        AnnotationError: missing columns, malformed times, an unknown class name, or no rows.
    """
    csv_path, video_root = Path(csv_path), Path(video_root)
    if not csv_path.is_file():
        raise AnnotationError(f"read_kinetics_csv: file not found: {csv_path}")
    with open(csv_path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or [])
        needed = {"youtube_id", "time_start", "time_end"}
        if not needed <= columns:
            raise AnnotationError(
                f"{csv_path}: missing column(s) {sorted(needed - columns)}; expected a header "
                "'label,youtube_id,time_start,time_end,split'"
            )
        if subset is not None and "split" not in columns:
            raise AnnotationError(
                f"{csv_path}: subset={subset!r} given but there is no 'split' column"
            )
        rows = [(number, row) for number, row in enumerate(reader, start=2)]
    if subset is not None:
        rows = [(n, r) for n, r in rows if r["split"].strip() == subset]
    has_label = "label" in columns
    if classes is None:
        labels = {r["label"].strip() for _, r in rows} if has_label else set()
        classes = sorted(label for label in labels if label)
    classes = list(classes)
    index = _class_index(classes)
    folder_for: dict[str, Path] = {}
    records = []
    for number, row in rows:
        where = f"{csv_path}:{number}"
        try:
            start, end = int(float(row["time_start"])), int(float(row["time_end"]))
        except (TypeError, ValueError):
            raise AnnotationError(
                f"{where}: time_start/time_end must be numbers, got "
                f"{row['time_start']!r}/{row['time_end']!r}"
            ) from None
        youtube_id = (row["youtube_id"] or "").strip()
        if not youtube_id:
            raise AnnotationError(f"{where}: empty youtube_id")
        file_name = f"{youtube_id}_{start:06d}_{end:06d}{ext}"
        label_name = row["label"].strip() if has_label and row["label"] else ""
        if label_name:
            if label_name not in index:
                raise _unknown_class(label_name, where, classes)
            if label_name not in folder_for:
                folder_for[label_name] = _kinetics_class_folder(video_root, label_name)
            records.append(VideoRecord(folder_for[label_name] / file_name, index[label_name]))
        else:
            records.append(VideoRecord(video_root / file_name, UNLABELED))
    name = f"Kinetics {subset or 'all'} ({csv_path})"
    _nonempty(records, name)
    return Annotation(records, classes, name)


def _kinetics_class_folder(video_root: Path, label: str) -> Path:
    for candidate in (label, label.replace(" ", "_"), label.replace(" ", "_").replace("'", "")):
        if (video_root / candidate).is_dir():
            return video_root / candidate
    return video_root / label


# ---------------------------------------------------------------------------- generic lists


def read_list_file(
    list_path: str | Path,
    root: str | Path | None = None,
    classes: Sequence[str] | None = None,
    one_based: bool = False,
) -> Annotation:
    """Read a generic list: one ``relative/path label`` per line (``#`` starts a comment).

    The label is an integer class index or a class name (paths may contain spaces: the label is
    the last whitespace-separated token).

    Args:
        list_path: the list file.
        root: the folder paths are relative to; default: the list file's folder.
        classes: class names; needed to map names to indices consistently across lists.
            Default: for integer labels ``["0", "1", ...]`` up to the largest; for names, the
            sorted names.
        one_based: integer labels start at 1.
    """
    list_path = Path(list_path)
    root = list_path.parent if root is None else Path(root)
    entries: list[tuple[str, str, str]] = []
    for number, line in _lines(list_path, "read_list_file"):
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2:
            raise AnnotationError(
                f"{list_path}:{number}: expected '<relative/path> <label>', got {line!r}"
            )
        entries.append((f"{list_path}:{number}", parts[0], parts[1]))
    if not entries:
        raise AnnotationError(f"{list_path}: the list holds no videos")
    offset = 1 if one_based else 0
    numeric = all(_is_int(label) for _, _, label in entries)
    if classes is None:
        if numeric:
            top = max(int(label) - offset for _, _, label in entries)
            classes = [str(i) for i in range(top + 1)]
        else:
            classes = sorted({label for _, _, label in entries})
    classes = list(classes)
    index = _class_index(classes)
    records = []
    for where, rel, label in entries:
        if _is_int(label):
            value = int(label) - offset
            if not 0 <= value < len(classes):
                raise AnnotationError(
                    f"{where}: label {label} is outside {offset}..{len(classes) - 1 + offset}"
                )
        elif label in index:
            value = index[label]
        else:
            raise _unknown_class(label, where, classes)
        records.append(VideoRecord(root / rel, value))
    return Annotation(records, classes, f"list {list_path}")


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


# ---------------------------------------------------------------------------- unlabeled


def read_video_folder(
    root: str | Path, extensions: Sequence[str] = VIDEO_EXTENSIONS, recursive: bool = True
) -> Annotation:
    """Every video file under ``root`` (sorted paths), unlabeled: the transfer stage's source.

    Args:
        root: the folder to scan.
        extensions: file name endings that count as videos (case-insensitive).
        recursive: also scan subfolders.
    """
    root = Path(root)
    if not root.is_dir():
        raise AnnotationError(f"read_video_folder: folder not found: {root}")
    exts = tuple(e.lower() for e in extensions)
    pattern = "**/*" if recursive else "*"
    paths = sorted(p for p in root.glob(pattern) if p.is_file() and p.name.lower().endswith(exts))
    if not paths:
        raise AnnotationError(
            f"read_video_folder: no videos ({', '.join(exts)}) in {root}"
            + (" or its subfolders" if recursive else "")
        )
    return Annotation([VideoRecord(p) for p in paths], [], f"video folder {root}")
