"""Sources the lab layer provides to the runtime as plug-ins (``forcecast.sources`` entry points)."""
