"""forcecast host app: the BLE central that logs, reports and flashes devices.

Layering: may import ``edge`` (wire protocol, package reader), never ``training``.
"""

if __name__ != "forcecast.host_app":  # one module, one name (no bare import)
    raise ImportError(f"import forcecast's host app package as 'forcecast.host_app', not {__name__!r}")
