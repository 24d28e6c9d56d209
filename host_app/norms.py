"""Published reference values for healthy adult walking, as the report draws them (with their sources).

Every band here names where it comes from and the walking speed it holds for; the report shows them
beside the patient's figures as orientation, not as targets (a patient walks slower, and the forces are
model predictions). Sources:

- Kirtley C, Whittle MW, Jefferson RJ. Influence of walking speed on gait parameters. J Biomed Eng
  1985;7(4):282-288: stance duration = 64.2 − 3.5 × speed (m/s) % of the gait cycle, so 59–61 % at
  1.0–1.5 m/s.
- Perry J, Burnfield JM. Gait Analysis: Normal and Pathological Function, 2nd ed. SLACK, 2010: at a
  customary speed of about 1.37 m/s (82 m/min) stance is 60 % and swing 40 % of the cycle, with two
  double-support periods of about 10 % each (20 % in all).
- Keller TS, Weisberger AM, Ray JL, Hasan SS, Shiavi RG, Spengler DM. Relationship between vertical
  ground reaction force and speed during walking, slow jogging, and running. Clin Biomech
  1996;11(5):253-259: the largest vertical GRF is about 1.2 BW when walking at 1.5 m/s, rising with speed.

Double support follows from stance when both legs step alike: each leg's stance overlaps the other's
twice per cycle, so double support = 2 × stance − 100 %; the 59–61 % stance band gives 18–22 %.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Norm:
    """A reference band for healthy walking: ``low``–``high`` in ``unit``, at ``speed``, from ``source``."""

    name: str
    low: float
    high: float
    unit: str
    speed: str
    source: str

    def text(self) -> str:
        """The band in words, e.g. ``healthy 59–61 % at 1.0–1.5 m/s (Kirtley et al. 1985)``."""
        band = f"{self.low:g}" if self.low == self.high else f"{self.low:g}–{self.high:g}"
        return f"healthy {band} {self.unit} at {self.speed} ({self.source})"


STANCE_PCT = Norm("stance", 59.0, 61.0, "%", "1.0–1.5 m/s", "Kirtley et al. 1985; Perry & Burnfield 2010: 60 %")
SWING_PCT = Norm("swing", 39.0, 41.0, "%", "1.0–1.5 m/s", "100 − stance; Perry & Burnfield 2010: 40 %")
DOUBLE_SUPPORT_PCT = Norm(
    "double support", 18.0, 22.0, "%", "1.0–1.5 m/s", "2 × stance − 100; Perry & Burnfield 2010: 20 %"
)
HIGHEST_VERTICAL_PEAK_BW = Norm("highest vertical peak", 1.2, 1.2, "BW", "1.5 m/s", "Keller et al. 1996")
