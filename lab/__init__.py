"""forcecast lab: the lab layer — dataset format v1, import from lab formats, the synthetic gait lab.

Layering: sits on device code (may import ``forcecast.edge``), below training; never ``training`` or
``host_app``. A device installed with only the ``edge`` extra does not need it: its packages (pandas, pyarrow,
tqdm, ezc3d) come with the ``lab`` extra. Imported as ``forcecast.lab`` (the folder ``lab/`` is mapped there).
"""

if __name__ != "forcecast.lab":  # one module, one name: never importable as a bare ``lab`` next to forcecast.lab
    raise ImportError(f"import forcecast's lab layer as 'forcecast.lab', not {__name__!r}")
