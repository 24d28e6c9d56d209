"""The on-device pipeline: calibration, DSP, inference, steps, metrics, store, feedback."""
