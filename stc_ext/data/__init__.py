"""Video data: sources, annotation formats, clip sampling, transforms, and a synthetic dataset.

From files on disk to clip tensors ``(N, 3, T, 112, 112)`` following the paper's protocol
(§4.1-4.2)::

    from stc_ext.data import ClipLoader, VideoClipDataset, read_ucf101

    train = VideoClipDataset(read_ucf101("UCF-101", "ucfTrainTestlist", split=1),
                             frames=16, stride=2, mode="train")
    for clips, labels in ClipLoader(train, batch_size=8, num_workers=2):
        ...  # clips: float32 (8, 3, 16, 112, 112)

:mod:`stc_ext.data.synthetic` writes a small action dataset of real video files in the UCF101
layout (``stc synth --out DIR``). :func:`prepare_dataset` (``stc prepare SRC DST``) resizes a
dataset's videos (or extracts JPEG frames) once, so that decoding keeps up with a GPU.
:mod:`stc_ext.data.holdout` holds whole groups of clips out of a training list for validation
(deterministic, never leaking a group across the sides).
"""

from .annotations import (
    UNLABELED,
    Annotation,
    VideoRecord,
    read_hmdb51,
    read_kinetics_csv,
    read_list_file,
    read_ucf101,
    read_video_folder,
)
from .dataset import MODES, SkippedVideo, VideoClipDataset
from .decode import (
    FrameFolderReader,
    VideoFileReader,
    count_frames,
    open_video,
    read_video,
)
from .errors import AnnotationError, DataError, MissingFilesError, VideoDecodeError
from .loader import ClipBatch, ClipLoader, VideoBatch, average_clip_scores, collate_clips
from .prepare import PrepareReport, prepare_dataset
from .sampling import (
    center_clip_indices,
    clip_span,
    non_overlapping_clip_indices,
    train_clip_indices,
)
from .transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    EvalTransform,
    TrainTransform,
    normalize,
    resize_short_side,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MODES",
    "UNLABELED",
    "Annotation",
    "AnnotationError",
    "ClipBatch",
    "ClipLoader",
    "DataError",
    "EvalTransform",
    "FrameFolderReader",
    "MissingFilesError",
    "PrepareReport",
    "SkippedVideo",
    "TrainTransform",
    "VideoBatch",
    "VideoClipDataset",
    "VideoDecodeError",
    "VideoFileReader",
    "VideoRecord",
    "average_clip_scores",
    "center_clip_indices",
    "clip_span",
    "collate_clips",
    "count_frames",
    "non_overlapping_clip_indices",
    "normalize",
    "open_video",
    "prepare_dataset",
    "read_hmdb51",
    "read_kinetics_csv",
    "read_list_file",
    "read_ucf101",
    "read_video",
    "read_video_folder",
    "resize_short_side",
    "train_clip_indices",
]
