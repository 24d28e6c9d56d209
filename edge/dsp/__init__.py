"""Signal processing shared by training and the device: the same code on both sides."""

from forcecast.edge.dsp.resample import (
    ANTIALIAS_FRACTION,
    CausalResampler,
    antialias_sos,
    grid_times,
    nominal_rate_hz,
    resample,
)

__all__ = ["ANTIALIAS_FRACTION", "CausalResampler", "antialias_sos", "grid_times", "nominal_rate_hz", "resample"]
