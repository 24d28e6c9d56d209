"""Bluetooth Low Energy for the device: the forcecast GATT server on bumble (radio or in-process link)."""
