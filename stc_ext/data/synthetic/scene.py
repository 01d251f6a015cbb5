"""What is random about one synthetic video, whatever its class: :class:`Scene` and
:func:`sample_scene`.

A scene fixes the actor's look and its state at the video's middle, the drifting background
texture, the distractor's path and the pixel noise; the class (:mod:`.action_classes`) decides
only how the actor's state changes over time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

__all__ = ["SHAPES", "Scene", "sample_scene"]

#: The shapes an actor (or the distractor) can have; :func:`.rendering.render` draws each.
SHAPES: tuple[str, ...] = ("ellipse", "rectangle", "triangle", "cross")
_SIZE_RANGE = (18.0, 26.0)  # actor half-extent (px at 128x128) at mid-growth, log-uniform


@dataclass(frozen=True)
class Scene:
    """Everything random about one video except its class (sizes in pixels of a ``size`` canvas).

    Per-frame arrays (background shift, distractor path, noise seed) are class-independent;
    the actor's centre-of-time state ``x, y, angle, log_size, hue`` is what its class animates.
    """

    frames: int
    size: int
    # actor appearance
    shape: str
    stripe_freq: float
    stripe_angle: float
    stripe_phase: float
    saturation: float
    # actor state at the video's middle, and its per-frame rates when animated
    x: float
    y: float
    angle: float
    log_size: float
    hue: float
    size_offset: float  # in [-0.5, 0.5]: where a non-growing actor sits in the growth range
    sign: int  # +1 or -1: the direction of classes that move/spin "either way"
    speed: float
    spin: float
    hue_rate: float
    # background: a smooth periodic texture drifting along bg_shift (T, 2)
    bg_spectrum: np.ndarray = field(repr=False)
    bg_base: np.ndarray = field(repr=False)
    bg_amp: np.ndarray = field(repr=False)
    bg_shift: np.ndarray = field(repr=False)
    # distractor: a small object on a random walk (T, 2)
    dis_path: np.ndarray = field(repr=False)
    dis_shape: str = "ellipse"
    dis_size: float = 7.0
    dis_angle: float = 0.0
    dis_hue: float = 0.0
    dis_saturation: float = 0.5
    noise_seed: int = 0
    noise_std: float = 3.0 / 255.0

    def reversed(self) -> Scene:
        """The same scene with its class-independent motion (and ``sign``) played backwards."""
        return replace(
            self,
            bg_shift=self.bg_shift[::-1].copy(),
            dis_path=self.dis_path[::-1].copy(),
            sign=-self.sign,
        )


def sample_scene(
    rng: np.random.Generator, frames: int = 48, size: int = 128, varied: bool = False
) -> Scene:
    """Draw a random :class:`Scene` (class-independent) from ``rng``.

    By default every video shows the same actor (a striped rectangle) over the same mid-gray
    background, varying only what the classes animate (position, angle, size, hue) and the
    distractions (background drift, distractor path, noise): with little else differing between
    videos, a small 3D CNN finds the motion within a few hundred steps instead of memorising each
    video's look. ``varied=True`` also draws the actor's shape, texture and saturation and the
    background's colour per video (a harder dataset).
    """
    scale = size / 128.0
    # Background: low-pass complex Gaussian field, periodic on the canvas so it can drift.
    k = np.fft.fftfreq(size) * size
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    spectrum = rng.standard_normal((size, size)) + 1j * rng.standard_normal((size, size))
    spectrum *= np.exp(-k2 / (2 * 4.0**2))
    field0 = np.fft.ifft2(spectrum).real
    spectrum /= field0.std() + 1e-12
    direction = rng.uniform(0, 2 * math.pi)
    drift = rng.uniform(0.2, 0.6) * scale
    t = np.arange(frames)[:, None]
    bg_shift = t * drift * np.array([math.cos(direction), math.sin(direction)])
    # Distractor: damped random-walk velocity, so it wanders without a consistent direction.
    vel = np.zeros(2)
    pos = rng.uniform(0, size, 2)
    path = np.empty((frames, 2))
    for i in range(frames):
        path[i] = pos
        vel = 0.85 * vel + rng.normal(0, 0.6 * scale, 2)
        pos = (pos + vel) % size
    if varied:
        appearance = dict(
            shape=SHAPES[rng.integers(len(SHAPES))],
            stripe_freq=rng.uniform(1.2, 2.2),
            stripe_angle=rng.uniform(0, math.pi),
            stripe_phase=rng.uniform(0, 2 * math.pi),
            saturation=rng.uniform(0.7, 0.95),
            bg_base=rng.uniform(0.3, 0.6) + rng.uniform(-0.05, 0.05, 3),
            dis_shape=SHAPES[rng.integers(len(SHAPES))],
            dis_saturation=0.5,
        )
    else:
        appearance = dict(
            shape="rectangle",
            stripe_freq=1.5,
            stripe_angle=0.0,
            stripe_phase=0.0,
            saturation=0.85,
            bg_base=np.full(3, 0.45),
            dis_shape="ellipse",
            dis_saturation=0.0,
        )
    return Scene(
        frames=frames,
        size=size,
        **appearance,
        x=rng.uniform(0, size),
        y=rng.uniform(0, size),
        angle=rng.uniform(0, 2 * math.pi),
        log_size=rng.uniform(*np.log(_SIZE_RANGE)) + math.log(scale),
        hue=rng.uniform(0, 1),
        size_offset=rng.uniform(-0.5, 0.5),
        sign=int(rng.choice([-1, 1])),
        speed=rng.uniform(1.2, 1.8) * scale,
        spin=math.radians(rng.uniform(3.0, 5.0)),
        hue_rate=rng.uniform(0.8, 1.2) / 48,
        bg_spectrum=spectrum.astype(np.complex64),
        bg_amp=0.05 * (1 + rng.uniform(-0.3, 0.3, 3)),
        bg_shift=bg_shift,
        dis_path=path,
        dis_size=rng.uniform(4.0, 6.0) * scale,
        dis_angle=rng.uniform(0, 2 * math.pi),
        dis_hue=rng.uniform(0, 1),
        noise_seed=int(rng.integers(2**31)),
    )
