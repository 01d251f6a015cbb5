"""A small synthetic action dataset, written as real video files in the UCF101 layout.

It lets the whole pipeline (decoding, sampling, training, evaluation) run on a fresh machine with
no downloads, and it is built so that **only motion tells the classes apart**. Every video shows
the same textured actor (a striped rectangle, in a random hue, size, angle and position) over a
mid-gray background whose faint texture drifts in a random direction, with a small distractor
wandering at random and pixel noise. The class decides how the actor changes over time:

- ``MoveUp`` / ``MoveDown``: translates vertically (about 1.5 px/frame, wrapping around);
- ``Grow`` / ``Shrink``: scales up / down (x2.4 over the video);
- ``HueForward`` / ``HueBackward``: its colour cycles red->green->blue / red->blue->green (about
  one turn per 48 frames): this pair needs channels *and* time;
- ``MoveSideways``: translates horizontally, left or right (drawn per video);
- ``Spin``: rotates in place (about 4 degrees/frame), either way;
- ``Still``: does not change;
- ``MoveSidewaysFast``: like ``MoveSideways``, 2.5x faster;
- ``SpinFast``: like ``Spin``, 2.5x faster;
- ``MoveVerticalFast``: up or down, 2.5x faster than ``MoveUp``.

Left vs right and clockwise vs anticlockwise are deliberately *not* classes: the paper's
training protocol flips clips horizontally at random, which would swap them. Every class here is
invariant under a horizontal flip.

Why a single frame says nothing about the class: every attribute that one class animates is,
in every other class, drawn from the same distribution that the animation sweeps over (positions
uniform on the wrapped canvas, angles and hues uniform, sizes log-uniform over the growth range),
and each class's videos played backwards are videos of its mirror class (:func:`mirror_class`:
``MoveUp`` <-> ``MoveDown``, ``Grow`` <-> ``Shrink``, ``HueForward`` <-> ``HueBackward``, the
others their own): :func:`render` of a class on a scene, reversed in time, is exactly
:func:`render` of the mirror class on :meth:`Scene.reversed`. So per-class frame statistics match
and a 2D model sees nothing to learn, while a 3D model can.

Default size: 10 classes x 40 videos x 48 frames of 128x128 at 25 fps, H.264 (about 30 KB a
video, 12 MB in all), 30 train / 10 test videos per class. Measured on 2 CPU cores: generation
takes about 30 s in one process; through the full pipeline (16 frames at stride 2, 112x112
5-crop + flip), a 4-layer 3D CNN (0.7 M parameters, AdamW, batch 16) reached 77% video accuracy
on the test list after 216 steps (4 minutes) and 88% after 378 steps (chance: 10%), while the
same network on single frames (averaged over all frames of a video) stayed at chance.

:func:`shape_images` draws a different, image-level task for training a small 2D teacher: single
frames of the same varied scenes (the actor wholly inside, large, tilted by at most 45 degrees),
labelled by the actor's shape (:data:`SHAPE_CLASSES`).

Layout (read it with ``read_ucf101(out/"videos", out/"splits", split=1, subset=...)``)::

    out/videos/<ClassName>/v_<ClassName>_gXX_cYY.mp4
    out/splits/classInd.txt  trainlist01.txt  testlist01.txt
    out/synthetic.json       (the generation parameters)

Everything is deterministic from ``seed`` (see :mod:`.dataset_writer`).

One module per job, in the order the data flows:

- :mod:`.scene`: what is random about a video whatever its class (:class:`Scene`,
  :func:`sample_scene`);
- :mod:`.action_classes`: how each class animates the actor (:data:`CLASS_NAMES`,
  :func:`actor_states`, :func:`mirror_class`);
- :mod:`.rendering`: a scene and a class -> RGB frames (:func:`render`);
- :mod:`.encoding`: RGB frames -> an H.264 file (:func:`write_video`);
- :mod:`.dataset_writer`: the dataset on disk (:func:`generate`, :class:`SyntheticDataset`);
- :mod:`.image_task`: the 2D teacher's shape-labelled images (:func:`shape_images`).
"""

from __future__ import annotations

from .action_classes import CLASS_NAMES, actor_states, mirror_class
from .dataset_writer import GENERATOR_VERSION, SyntheticDataset, generate
from .encoding import write_video
from .image_task import SHAPE_CLASSES, shape_images
from .rendering import render
from .scene import Scene, sample_scene

__all__ = [
    "CLASS_NAMES",
    "GENERATOR_VERSION",
    "SHAPE_CLASSES",
    "Scene",
    "SyntheticDataset",
    "actor_states",
    "generate",
    "mirror_class",
    "render",
    "sample_scene",
    "shape_images",
    "write_video",
]
