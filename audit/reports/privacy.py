"""What a public report hides: pseudonyms, small cells, and (optionally) differentially private usage counts.

* **Pseudonyms.** Operators and subjects are shown as keyed pseudonyms
  (``operator-<10 hex>``, ``subject-<10 hex>``: HMAC-SHA256 under the log's pseudonymisation
  key, :func:`audit.trail.export.pseudonym`), stable across reports made with the same
  key and not reversible without it. Account names in refusals are never listed.
* **Small cells.** A count from 1 to ``k - 1`` is shown as ``"< k"`` (zero is shown). In the
  usage tables by operator, gallery and purpose, whose total is printed, a lone suppressed
  cell takes the smallest other cell with it (``"suppressed"``), so subtraction does not
  recover it. Other tables and the review facts are suppressed cell by cell only.
* **Differential privacy** (``epsilon`` given): the counts of uses (the usage tables and
  totals) are released through OpenDP's discrete Laplace mechanism
  (``opendp.measurements.make_laplace`` on integers). The privacy unit is one use (one
  search, verification or video record); each use is counted once in each of the
  :data:`USAGE_RELEASES` usage partitions, so their joint L1 sensitivity is that number
  and the noise scale is ``USAGE_RELEASES / epsilon``. Noisy counts are then clamped at 0
  and suppressed like any other; every other number of the report is exact and only
  suppressed, and the report says which is which. OpenDP's vetted-but-``contrib``
  mechanisms need ``enable_features("contrib")``, which this module turns on when asked
  for noise (the library's documented switch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from audit.trail.export import pseudonym

__all__ = ["USAGE_RELEASES", "Privacy"]

#: Usage partitions a use is counted in once each: by month and action, purpose, gallery, operator, and the totals.
USAGE_RELEASES = 5


@dataclass
class Privacy:
    """How one report shows identities and counts.

    Parameters
    ----------
    public
        Pseudonymise operators and subjects and suppress small cells.
    k
        Smallest count shown in a public report (smaller ones read ``"< k"``).
    key
        The pseudonymisation key (public reports only).
    epsilon
        Total privacy budget of the differentially private usage counts (``None``: no noise).
    """

    public: bool = False
    k: int = 5
    key: bytes | None = None
    epsilon: float | None = None
    _noise: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.k < 2:
            raise ValueError(f"the smallest count shown must be at least 2, got {self.k}")
        if self.public and self.key is None:
            raise ValueError("a public report needs the pseudonymisation key")
        if self.epsilon is not None:
            if not self.public:
                raise ValueError("differentially private counts are for public reports (--public)")
            if not (math.isfinite(self.epsilon) and self.epsilon > 0):
                raise ValueError(f"epsilon must be a positive number, got {self.epsilon}")

    @property
    def scale(self) -> float | None:
        """The discrete Laplace scale of usage counts, or ``None`` without noise."""
        return None if self.epsilon is None else USAGE_RELEASES / self.epsilon

    def operator(self, name: str | None) -> str:
        """Return the operator as shown (a pseudonym in a public report)."""
        if name is None:
            return "(none)"
        if not self.public:
            return name
        assert self.key is not None
        return "operator-" + pseudonym("operator:" + name, self.key)[3:13]

    def reviewer(self, name: str) -> str:
        """Return the reviewer account as shown (a pseudonym in a public report, unlinkable to its operator one)."""
        if not self.public:
            return name
        assert self.key is not None
        return "reviewer-" + pseudonym("reviewer:" + name, self.key)[3:13]

    def subject(self, subject_id: str | None) -> str:
        """Return the subject as shown (a pseudonym in a public report)."""
        if subject_id is None:
            return "(none)"
        if not self.public or subject_id == "erased":  # an erased subject (audit.trail.sealed) is nobody's pseudonym
            return subject_id
        assert self.key is not None
        return "subject-" + pseudonym("subject:" + subject_id, self.key)[3:13]

    def count(self, value: int) -> int | str:
        """Return an exact count as shown: suppressed below ``k`` in a public report."""
        value = int(value)
        if self.public and 0 < value < self.k:
            return f"< {self.k}"
        return value

    def usage(self, value: int) -> int | str:
        """Return a count of uses as shown: with noise when ``epsilon`` is set, then suppressed like any count."""
        return self.count(self.noisy(value))

    def protect(self, rows: list[dict[str, Any]], column: str) -> list[dict[str, Any]]:
        """Return rows whose ``column`` adds up to a published total, with complementary suppression.

        In a public report, a single suppressed cell of a table whose total is shown elsewhere
        could be recovered by subtraction: the smallest other non-zero cell is then hidden too
        (shown as ``"suppressed"``), so only the sum of the two is known.
        """
        if not self.public:
            return rows
        hidden = [r for r in rows if isinstance(r[column], str)]
        shown = [r for r in rows if isinstance(r[column], int) and r[column] > 0]
        if len(hidden) == 1 and shown:
            smallest = min(shown, key=lambda r: int(r[column]))
            return [{**r, column: "suppressed"} if r is smallest else r for r in rows]
        return rows

    def noisy(self, value: int) -> int:
        """Return a count of uses with discrete Laplace noise when ``epsilon`` is set (clamped at 0), else as is."""
        if self.epsilon is None:
            return int(value)
        if self._noise is None:
            assert self.scale is not None
            import opendp.prelude as dp  # noqa: PLC0415 (only a report with epsilon loads it)

            dp.enable_features("contrib")
            self._noise = dp.m.make_laplace(dp.atom_domain(T=int), dp.absolute_distance(T=int), scale=self.scale)
        return max(0, int(self._noise(int(value))))

    def statement(self) -> dict[str, Any]:
        """Return what the report says about its privacy protection."""
        out: dict[str, Any] = {"public": self.public}
        if self.public:
            out.update({
                "pseudonyms": "operators and subjects are keyed HMAC-SHA256 pseudonyms; account names are not listed",
                "suppressed_below": self.k,
                "suppression": f"counts from 1 to {self.k - 1} are shown as '< {self.k}'",
            })
        if self.epsilon is not None:
            out.update({
                "differential_privacy": "usage counts (uses by month and action, purpose, gallery, operator, "
                                        "and the totals) carry discrete Laplace noise (OpenDP make_laplace); "
                                        "every other number is exact and only suppressed",
                "privacy_unit": "one use (one search, verification or video record)",
                "epsilon": self.epsilon,
                "sensitivity": USAGE_RELEASES,
                "noise_scale": self.scale,
            })
        return out
