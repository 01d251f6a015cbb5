"""The validation hold-out (stc_ext.data.holdout): grouped, deterministic, leak-free."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from stc_ext.data import Annotation, VideoRecord
from stc_ext.data.holdout import group_key, group_score, hold_out, video_id

CLASSES = ["ApplyEyeMakeup", "Archery", "Basketball", "Drumming"]


def ucf101_style(root: Path, classes=CLASSES, groups=range(8, 26)) -> Annotation:
    """A UCF101-style training list: groups g08..g25 (split 1's), 4..7 clips per group."""
    records = []
    for label, cls in enumerate(classes):
        for g in groups:
            for c in range(1, 4 + (g * (label + 3)) % 4 + 1):
                records.append(VideoRecord(root / cls / f"v_{cls}_g{g:02d}_c{c:02d}.avi", label))
    return Annotation(records, list(classes), "ucf101-style train")


def _ucf_group(record: VideoRecord) -> str:
    # Written out independently of group_key: v_<Action>_gXX_cYY -> <Action>_gXX.
    return record.path.stem.rsplit("_c", 1)[0].removeprefix("v_")


def test_ucf101_groups_stay_on_one_side_and_every_class_keeps_training_videos(tmp_path):
    listed = ucf101_style(tmp_path)
    held = hold_out(listed, "ucf101", 0.1)
    train_groups = {_ucf_group(r) for r in held.train.records}
    val_groups = {_ucf_group(r) for r in held.val.records}
    assert train_groups and val_groups and not train_groups & val_groups
    assert sorted(map(str, (r.path for r in held.train.records + held.val.records))) == sorted(
        str(r.path) for r in listed.records
    )
    per_class = Counter(r.label for r in listed.records)
    val_per_class = Counter(r.label for r in held.val.records)
    for label, n in per_class.items():
        # At least round(10%) of each class, at most one group (<= 7 clips) more.
        assert round(0.1 * n) <= val_per_class[label] < round(0.1 * n) + 7
    assert set(Counter(r.label for r in held.train.records)) == set(per_class)
    assert held.groups_val == len(val_groups) and held.ungrouped == 0
    assert held.classes_without_val == []


def test_the_split_depends_on_names_only(tmp_path):
    listed = ucf101_style(tmp_path / "here")
    first = hold_out(listed, "ucf101", 0.1)
    shuffled = list(listed.records)
    random.Random(5).shuffle(shuffled)
    moved = ucf101_style(tmp_path / "elsewhere")  # another root: the same groups
    for other in (Annotation(shuffled, listed.classes), moved):
        again = hold_out(other, "ucf101", 0.1)
        assert {r.path.name for r in again.val.records} == {r.path.name for r in first.val.records}
    ids = [video_id(r.path, tmp_path / "here") for r in first.val.records]
    assert all(i.count("/") == 1 and not i.startswith("/") for i in ids)
    # The score is SHA-256 of the group's name, nothing else (no seed anywhere).
    assert group_score("Archery_g08") == group_score("Archery_g08") != group_score("Archery_g09")
    assert 0 <= group_score("") < 1


def test_a_larger_fraction_holds_out_more(tmp_path):
    listed = ucf101_style(tmp_path)
    small = {r.path for r in hold_out(listed, "ucf101", 0.1).val.records}
    large = {r.path for r in hold_out(listed, "ucf101", 0.3).val.records}
    assert small < large  # groups are taken in the same order: a prefix of the larger set


def test_tiny_classes_keep_all_their_videos_for_training(tmp_path):
    # "Archery" has one group: it cannot give validation videos and keep training ones.
    big = ucf101_style(tmp_path, ["ApplyEyeMakeup"])
    tiny = [VideoRecord(tmp_path / f"Archery/v_Archery_g08_c0{c}.avi", 1) for c in range(1, 5)]
    listed = Annotation(big.records + tiny, ["ApplyEyeMakeup", "Archery"])
    held = hold_out(listed, "ucf101", 0.5)
    assert held.classes_without_val == ["Archery"]
    assert sum(r.label == 1 for r in held.train.records) == 4
    only_tiny = hold_out(Annotation(tiny, ["ApplyEyeMakeup", "Archery"]), "ucf101", 0.5)
    assert only_tiny.val.records == [] and len(only_tiny.train) == 4


HMDB = {
    "brush_hair": [
        "April_09_brush_hair_u_nm_np1_ba_goo_0",
        "April_09_brush_hair_u_nm_np1_ba_goo_1",
        "Aussie_Brunette_Brushing_Long_Hair_brush_hair_u_nm_np1_ba_med_3",
        "Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0",
    ],
    "wave": [
        "20060723sfjffbartsinger_wave_f_cm_np1_ba_med_0",
        "American_History_X_wave_h_cm_np1_fr_goo_2",
        "odd-name",
    ],
    "kick": [
        "American_History_X_kick_f_cm_np2_le_bad_0",
        "American_History_X_kick_f_cm_np2_le_bad_1",
        "Bruce_Lee_kick_f_nm_np1_ri_goo_4",
    ],
}


def test_hmdb51_groups_by_the_source_video_across_actions(tmp_path):
    assert group_key("hmdb51", "x/April_09_brush_hair_u_nm_np1_ba_goo_1.avi", "brush_hair") == (
        "April_09"
    )
    assert group_key("hmdb51", "Bruce_Lee_kick_f_nm_np1_ri_goo_4.avi", "kick") == "Bruce_Lee"
    # The movie gives clips of two actions: one group.
    assert group_key("hmdb51", "American_History_X_wave_h_cm_np1_fr_goo_2.avi", "wave") == (
        group_key("hmdb51", "American_History_X_kick_f_cm_np2_le_bad_0.avi", "kick")
    )
    assert group_key("hmdb51", "odd-name.avi", "wave") is None  # grouped by video
    assert group_key("hmdb51", "brush_hair_u_nm_np1_ba_goo_0.avi", "brush_hair") is None
    assert group_key("ucf101", "v_Archery_g08_c01.avi", "Archery") == "Archery_g08"
    assert group_key("synthetic", "v_MoveUp_g02_c04.mp4", "MoveUp") == "MoveUp_g02"
    assert group_key("ucf101", "Archery_001.avi", "Archery") is None
    with pytest.raises(ValueError, match="dataset must be one of"):
        group_key("kinetics", "a.mp4", "x")

    classes = sorted(HMDB)
    records = [
        VideoRecord(tmp_path / cls / f"{name}.avi", classes.index(cls))
        for cls in classes
        for name in HMDB[cls]
    ]
    for fraction in (0.2, 0.4, 0.6):
        held = hold_out(Annotation(records, classes), "hmdb51", fraction)
        assert held.ungrouped == 1
        val = {r.path.stem for r in held.val.records}
        train = {r.path.stem for r in held.train.records}
        for source in ("April_09", "American_History_X"):
            sides = {stem in val for stem in val | train if stem.startswith(source)}
            assert len(sides) == 1, (fraction, source)
        assert {r.label for r in held.train.records} == {0, 1, 2}


def test_bad_arguments():
    listed = Annotation([VideoRecord(Path("v_A_g01_c01.avi"), 0)], ["A"])
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\)"):
        hold_out(listed, "ucf101", 0.0)
    with pytest.raises(ValueError, match="dataset must be one of"):
        hold_out(listed, "kinetics", 0.1)
    with pytest.raises(ValueError, match="videos without a class"):
        hold_out(Annotation([VideoRecord(Path("v_A_g01_c01.avi"))], ["A"]), "ucf101", 0.1)
