"""Errors of the evaluation package.

Malformed values (a threshold that is not a number, a grouping that is not
``col`` or ``col*col``) are :class:`core.errors.BadInput`, unusable manifests
:class:`core.errors.ManifestError`, like everywhere in facetrail. What is left is
data that reads fine but cannot be evaluated as asked: an
:class:`EvaluationError`, an :class:`audit.errors.AuditError`. Shapes that do not
fit (a programmer's mistake) stay :class:`ValueError`.
"""

from __future__ import annotations

from audit.errors import AuditError

__all__ = ["EvaluationError"]


class EvaluationError(AuditError):
    """The data cannot be evaluated as asked.

    Fewer than two subjects with a face (no impostor pairs), an empty gallery, a
    threshold so loose that too many impostor pairs would have to be kept, a
    calibration target that admits every impostor pair.
    """

    code = "evaluation_error"
