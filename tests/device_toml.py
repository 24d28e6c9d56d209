"""Device configuration text shared by the end-to-end tests that start a real device runtime."""

from __future__ import annotations

BOTH_LEGS_TOML = (
    '[runtime]\nlegs = ["l", "r"]\n'
    '[[sensors]]\nplace = "r_shank"\nbus = 1\naddress = 0x6A\n'
    '[[sensors]]\nplace = "r_thigh"\nbus = 1\naddress = 0x6B\n'
    '[[sensors]]\nplace = "pelvis"\nbus = 3\naddress = 0x6B\n'
    '[[sensors]]\nplace = "l_shank"\nbus = 3\naddress = 0x6A\n'
    '[[sensors]]\nplace = "l_thigh"\nbus = 4\naddress = 0x6B\n'
    '[feedback]\noutput = "none"\n'
)
"""Both legs on five sensors (shanks, thighs, pelvis) on the buses of ``hardware/device.toml``; no cue output."""
