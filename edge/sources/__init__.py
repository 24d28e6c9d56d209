"""Sensor sources: replayed trials, the live synthetic walker, and real IMUs on I²C."""
