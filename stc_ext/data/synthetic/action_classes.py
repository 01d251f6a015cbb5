"""The action classes: how each one animates the actor of a :class:`.Scene` over time.

:data:`CLASS_NAMES` lists them (the package docstring describes each), :func:`actor_states`
gives the actor's per-frame state for a class, and :func:`mirror_class` names the class whose
videos are another's played backwards.
"""

from __future__ import annotations

import math

import numpy as np

from .scene import Scene

__all__ = ["CLASS_NAMES", "actor_states", "mirror_class"]

# class -> (animated attribute or None, direction, rate multiplier). Direction 0 means "either
# way, drawn per video" (Scene.sign): such a class is its own time mirror and flip-invariant.
_DYNAMICS: dict[str, tuple[str | None, int, float]] = {
    "MoveUp": ("y", -1, 1.0),  # image y points down
    "MoveDown": ("y", 1, 1.0),
    "Grow": ("log_size", 1, 1.0),
    "Shrink": ("log_size", -1, 1.0),
    "HueForward": ("hue", 1, 1.0),
    "HueBackward": ("hue", -1, 1.0),
    "MoveSideways": ("x", 0, 1.0),
    "Spin": ("angle", 0, 1.0),
    "Still": (None, 0, 0.0),
    "MoveSidewaysFast": ("x", 0, 2.5),
    "SpinFast": ("angle", 0, 2.5),
    "MoveVerticalFast": ("y", 0, 2.5),
}

#: All classes, in the order ``classes=K`` takes them (mirror pairs first).
CLASS_NAMES: tuple[str, ...] = tuple(_DYNAMICS)

_GROWTH = math.log(2.4)  # Grow/Shrink scale by 2.4 over the whole video, whatever its length


def mirror_class(name: str) -> str:
    """The class whose videos are ``name``'s played backwards (``MoveUp`` -> ``MoveDown``)."""
    attr, direction, mult = _DYNAMICS[name]
    if direction == 0:
        return name
    for other, (a, d, m) in _DYNAMICS.items():
        if a == attr and m == mult and d == -direction:
            return other
    raise KeyError(name)


def actor_states(name: str, scene: Scene) -> dict[str, np.ndarray]:
    """Per-frame actor ``x, y, angle, size, hue`` for class ``name``: arrays of shape (T,)."""
    attr, direction, mult = _DYNAMICS[name]
    t = np.arange(scene.frames) - (scene.frames - 1) / 2  # symmetric: the mirror is t -> -t
    growth_per_frame = _GROWTH / max(scene.frames - 1, 1)
    states = {
        "x": np.full(scene.frames, scene.x),
        "y": np.full(scene.frames, scene.y),
        "angle": np.full(scene.frames, scene.angle),
        "log_size": np.full(scene.frames, scene.log_size + _GROWTH * scene.size_offset),
        "hue": np.full(scene.frames, scene.hue),
    }
    if attr is not None:
        rate = {
            "x": scene.speed,
            "y": scene.speed,
            "angle": scene.spin,
            "log_size": growth_per_frame,
            "hue": scene.hue_rate,
        }[attr]
        sign = direction if direction != 0 else scene.sign
        base = scene.log_size if attr == "log_size" else states[attr][0]
        states[attr] = base + sign * mult * rate * t
    states["x"] %= scene.size
    states["y"] %= scene.size
    states["hue"] %= 1.0
    states["size"] = np.exp(states.pop("log_size"))
    return states
