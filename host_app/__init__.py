"""forcecast host app: the BLE central that logs, reports and flashes devices.

Layering: may import ``edge`` (wire protocol, package reader), never ``training``.
"""
