"""The validation hold-out: a deterministic, leak-free share of a training list.

Model selection (``best.pt``, the plateau schedule) must never see the test list. UCF101 and
HMDB51 publish only training and test lists, so the videos that select the model are held out
of the *training* list (:func:`hold_out`); the test list is left for the final report.

No leaks: clips cut from one source video share actors, scene and camera, so they go to the
same side. A *group* is what the file name says they share (:func:`group_key`):

* UCF101 (and the synthetic dataset, whose names follow it): ``v_<Action>_g<XX>_c<YY>`` ->
  ``<Action>_g<XX>``: the clips of one group are the same actors in the same scene;
* HMDB51: ``<source>_<action>_<body>_<cm|nm>_np<n>_<fr|ba|le|ri>_<bad|med|goo>_<clip>`` (the
  meta tags of Kuehne et al. 2011) -> ``<source>``, the title of the source video, shared
  across actions (a movie gives clips of several actions: they stay together);
* a name that does not follow its dataset's pattern is its own group (grouped by video).

Deterministic and independent of the seed: each group has a score, the first 8 bytes of
SHA-256 of its key read as a fraction in [0, 1). Per class (in label order), the class's
groups are taken in order of increasing score until ``round(fraction * n)`` of its ``n``
videos are held out (whole groups, so a class may get a few more). A group is never held out
when that would leave any class with no training video: a class whose videos all form one
group (a tiny class) keeps them all for training and has no validation videos; those classes
are listed in the result. The held-out set depends only on the training list's file names,
the dataset and the fraction (:data:`HOLDOUT_RULE` names this rule's version).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .annotations import Annotation, VideoRecord

__all__ = [
    "GROUPINGS",
    "HOLDOUT_RULE",
    "HoldOut",
    "fingerprint",
    "group_key",
    "group_score",
    "hold_out",
    "video_id",
]

#: The version of the hold-out rule; recorded with a run so that a resume under another
#: rule is noticed.
HOLDOUT_RULE = "grouped-sha256/1"

_UCF101_NAME = re.compile(r"^v_(?P<action>.+)_g(?P<group>\d+)_c(?P<clip>\d+)$")
_HMDB51_NAME = re.compile(
    r"^(?P<head>.+)_(?P<body>[fhlu])_(?P<motion>cm|nm)_np(?P<people>\d+)"
    r"_(?P<view>fr|ba|le|ri)_(?P<quality>bad|med|goo)_(?P<clip>\d+)$"
)

#: What groups the clips of each dataset the hold-out supports (for logs and reports).
GROUPINGS = {
    "ucf101": "v_<Action>_gXX_cYY grouped by <Action>_gXX (same actors and scene)",
    "synthetic": "v_<Action>_gXX_cYY grouped by <Action>_gXX (UCF101 naming)",
    "hmdb51": "<source>_<action>_<meta tags>_<clip> grouped by <source> (the source video)",
}


def group_key(dataset: str, path: str | Path, class_name: str) -> str | None:
    """The group of the clip at ``path`` of class ``class_name`` (see the module docstring),
    or None when its name does not follow ``dataset``'s pattern (the clip is its own group).

    >>> group_key("ucf101", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c03.avi", "ApplyEyeMakeup")
    'ApplyEyeMakeup_g08'
    >>> group_key("hmdb51", "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi", "brush_hair")
    'April_09'
    """
    if dataset not in GROUPINGS:
        raise ValueError(f"group_key: dataset must be one of {sorted(GROUPINGS)}, got {dataset!r}")
    stem = Path(path).stem
    if dataset in ("ucf101", "synthetic"):
        m = _UCF101_NAME.match(stem)
        return f"{m['action']}_g{m['group']}" if m else None
    m = _HMDB51_NAME.match(stem)
    if m is None:
        return None
    # The head is "<source>_<action>"; the action is the class folder's name.
    head, suffix = m["head"], f"_{class_name}"
    if not head.endswith(suffix) or len(head) == len(suffix):
        return None
    return head[: -len(suffix)]


def group_score(key: str) -> float:
    """A fraction in [0, 1) fixed by ``key`` alone: SHA-256's first 8 bytes / 2**64."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def video_id(path: str | Path, root: str | Path | None) -> str:
    """How a run records a video: its path relative to ``root`` (POSIX), or the path as
    given when it is not under ``root``."""
    path = Path(path)
    if root is not None:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    return path.as_posix()


@dataclass
class HoldOut:
    """A training list split into training and validation videos by :func:`hold_out`."""

    train: Annotation
    val: Annotation
    dataset: str
    fraction: float
    groups_train: int
    groups_val: int
    ungrouped: int  # videos whose name gives no group (each its own group)
    classes_without_val: list[str] = field(default_factory=list)
    rule: str = HOLDOUT_RULE

    @property
    def grouping(self) -> str:
        return GROUPINGS[self.dataset]


def hold_out(annotation: Annotation, dataset: str, fraction: float) -> HoldOut:
    """Hold whole groups of ``annotation``'s videos out for validation (module docstring).

    Args:
        annotation: a labelled training list (its class names name the actions).
        dataset: ``"ucf101"``, ``"hmdb51"`` or ``"synthetic"`` (how names give groups).
        fraction: the share of each class's videos to hold out, in (0, 1).

    Returns:
        A :class:`HoldOut`; its ``val`` may be empty when no group can be held out (every
        class is one group).

    Raises:
        ValueError: a bad ``fraction``/``dataset``, or unlabeled videos.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"hold_out: fraction must be in (0, 1), got {fraction!r}")
    if dataset not in GROUPINGS:
        raise ValueError(f"hold_out: dataset must be one of {sorted(GROUPINGS)}, got {dataset!r}")
    records = annotation.records
    classes = annotation.classes
    if any(not 0 <= r.label < len(classes) for r in records):
        raise ValueError(f"hold_out: {annotation.name} has videos without a class")
    members: dict[str, list[int]] = defaultdict(list)
    ungrouped = 0
    for index, record in enumerate(records):
        key = group_key(dataset, record.path, classes[record.label])
        if key is None:
            ungrouped += 1
            path = Path(record.path)
            key = f"video:{path.parent.name}/{path.name}"  # not the root: the same anywhere
        members[key].append(index)
    labels_of = {key: Counter(records[i].label for i in idx) for key, idx in members.items()}
    training_left = Counter(r.label for r in records)
    held: set[str] = set()
    by_class: dict[int, list[str]] = defaultdict(list)
    for key, labels in labels_of.items():
        for label in labels:
            by_class[label].append(key)
    for label in range(len(classes)):
        target = round(fraction * sum(labels_of[k][label] for k in by_class[label]))
        taken = sum(labels_of[k][label] for k in by_class[label] if k in held)
        for key in sorted(by_class[label], key=lambda k: (group_score(k), k)):
            if taken >= target:
                break
            if key in held:
                continue
            moved = labels_of[key]
            if any(training_left[c] - n < 1 for c, n in moved.items()):
                continue  # it would leave a class without training videos
            held.add(key)
            training_left.subtract(moved)
            taken += moved[label]
    val_index = sorted(i for key in held for i in members[key])
    in_val = set(val_index)
    train: list[VideoRecord] = [r for i, r in enumerate(records) if i not in in_val]
    val: list[VideoRecord] = [records[i] for i in val_index]
    with_val = {r.label for r in val}
    return HoldOut(
        train=Annotation(train, list(classes), f"{annotation.name}, training part"),
        val=Annotation(val, list(classes), f"{annotation.name}, held-out validation part"),
        dataset=dataset,
        fraction=fraction,
        groups_train=len(members) - len(held),
        groups_val=len(held),
        ungrouped=ungrouped,
        classes_without_val=[c for i, c in enumerate(classes) if i not in with_val],
    )


def fingerprint(ids: Sequence[str]) -> str:
    """SHA-256 of the sorted ids (one per line): a short fingerprint of a set of videos."""
    return hashlib.sha256("\n".join(sorted(ids)).encode("utf-8")).hexdigest()
