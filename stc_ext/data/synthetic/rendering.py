"""Drawing a :class:`.Scene` as the frames of one class: :func:`render`."""

from __future__ import annotations

import math

import numpy as np

from .action_classes import CLASS_NAMES, actor_states
from .scene import Scene

__all__ = ["render"]


def _shape_radius(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A gauge that is <= 1 inside the unit shape and grows ~linearly outside."""
    if shape == "ellipse":
        return np.sqrt(u * u + (v / 0.6) ** 2)
    if shape == "rectangle":
        return np.maximum(np.abs(u), np.abs(v) / 0.6)
    if shape == "triangle":  # circumradius 1, one vertex at +u: apex gives rotation a direction
        r = -u
        for a in (math.pi / 3, -math.pi / 3):
            r = np.maximum(r, u * math.cos(a) + v * math.sin(a))
        return r / 0.5
    if shape == "cross":
        arm_u = np.maximum(np.abs(u), np.abs(v) / 0.35)
        arm_v = np.maximum(np.abs(u) / 0.35, np.abs(v) / 0.85)
        return np.minimum(arm_u, arm_v)
    raise ValueError(f"unknown shape {shape!r}")


def _hue_rgb(hue: np.ndarray) -> np.ndarray:
    """Fully saturated RGB of hues in [0, 1): (..., ) -> (..., 3) in [0, 1]."""
    h6 = hue[..., None] * 6.0
    centres = np.array([3.0, 2.0, 4.0])
    rgb = np.abs(h6 - centres)
    rgb[..., 0] = rgb[..., 0] - 1.0
    rgb[..., 1:] = 2.0 - rgb[..., 1:]
    return np.clip(rgb, 0.0, 1.0)


def _draw(
    canvas: np.ndarray,
    grid: tuple[np.ndarray, np.ndarray],
    cx: np.ndarray,
    cy: np.ndarray,
    angle: np.ndarray,
    size: np.ndarray,
    hue: np.ndarray,
    shape: str,
    saturation: float,
    stripes: tuple[float, float, float] | None,
) -> None:
    """Alpha-blend a (wrapped) textured object onto ``canvas`` (T, H, W, 3) in place."""
    ys, xs = grid
    n = canvas.shape[1]
    half = n / 2
    # Only the object's bounding box (it may wrap around the edges) is rendered.
    reach = int(math.ceil(1.2 * float(size.max()) + 2))  # 1.2: the rectangle's corners
    if 2 * reach >= n:
        raise ValueError(f"object of half-extent {reach}px does not fit a {n}px canvas")
    offsets = np.arange(-reach, reach + 1)
    for t in range(canvas.shape[0]):
        rows = (int(round(cy[t])) + offsets) % n
        cols = (int(round(cx[t])) + offsets) % n
        dy = (ys[rows][:, None] - cy[t] + half) % n - half
        dx = (xs[cols][None, :] - cx[t] + half) % n - half
        c, s = math.cos(angle[t]), math.sin(angle[t])
        u = (c * dx + s * dy) / size[t]
        v = (-s * dx + c * dy) / size[t]
        alpha = np.clip((1.0 - _shape_radius(shape, u, v)) * size[t] + 0.5, 0.0, 1.0)
        if stripes is None:
            value = np.full_like(u, 0.9)
        else:
            freq, theta, phase = stripes
            value = 0.45 + 0.55 * (
                0.5
                + 0.5
                * np.sin(2 * math.pi * freq * (u * math.cos(theta) + v * math.sin(theta)) + phase)
            )
        colour = value[..., None] * (1.0 - saturation + saturation * _hue_rgb(hue[t]))
        patch = canvas[t][np.ix_(rows, cols)]
        a = alpha[..., None]
        canvas[t][np.ix_(rows, cols)] = patch * (1.0 - a) + colour * a


def render(name: str, scene: Scene, noise: bool = True) -> np.ndarray:
    """The frames of class ``name`` in ``scene``: ``uint8 (T, H, W, 3)`` RGB.

    ``noise=False`` leaves out the pixel noise (for exact comparisons, e.g. mirror classes).
    """
    if name not in CLASS_NAMES:
        raise ValueError(f"unknown synthetic class {name!r}; known: {list(CLASS_NAMES)}")
    n, frames = scene.size, scene.frames
    # Drift by a phase ramp in Fourier space (exact sub-pixel shift of the periodic texture);
    # the ramp is separable, so only 2*T*n complex exponentials are computed.
    k = np.fft.fftfreq(n)
    ramp_y = np.exp(-2j * np.pi * scene.bg_shift[:, 1, None] * k[None, :]).astype(np.complex64)
    ramp_x = np.exp(-2j * np.pi * scene.bg_shift[:, 0, None] * k[None, :]).astype(np.complex64)
    spectrum = scene.bg_spectrum[None] * ramp_y[:, :, None] * ramp_x[:, None, :]
    texture = np.fft.ifft2(spectrum).real.astype(np.float32)
    canvas = scene.bg_base.astype(np.float32) + texture[..., None] * scene.bg_amp.astype(np.float32)
    grid = (np.arange(n, dtype=np.float32), np.arange(n, dtype=np.float32))
    ones = np.ones(frames)
    _draw(
        canvas,
        grid,
        scene.dis_path[:, 0],
        scene.dis_path[:, 1],
        scene.dis_angle * ones,
        scene.dis_size * ones,
        scene.dis_hue * ones,
        scene.dis_shape,
        scene.dis_saturation,
        None,
    )
    st = actor_states(name, scene)
    _draw(
        canvas,
        grid,
        st["x"],
        st["y"],
        st["angle"],
        st["size"],
        st["hue"],
        scene.shape,
        scene.saturation,
        (scene.stripe_freq, scene.stripe_angle, scene.stripe_phase),
    )
    if noise:
        rng = np.random.default_rng(scene.noise_seed)
        # Uniform noise from raw bytes: ~10x cheaper than Gaussian draws (int8 std is 73.9).
        noise = np.frombuffer(rng.bytes(canvas.size), dtype=np.int8).reshape(canvas.shape)
        canvas += noise * np.float32(scene.noise_std / 73.9)
    canvas *= 255.0
    canvas += 0.5
    return np.clip(canvas, 0.0, 255.0, out=canvas).astype(np.uint8)
