"""``TrainingError``: what stops a run that has started.

Problems found before the first step are :class:`~stc_ext.train.config.ConfigError` s naming
a config field; a ``TrainingError`` stops a run in progress (undecodable data beyond the
allowed share, a step with no valid sample, a non-finite loss, a BatchNorm layer given a
single value per channel). Its message says where the run stopped and what the last
checkpoint holds.
"""

from __future__ import annotations

__all__ = ["TrainingError"]


class TrainingError(RuntimeError):
    """A training run stopped because continuing would give a silently wrong result."""
