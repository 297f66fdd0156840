"""hjplug.passes (import it as hjplug.passes, never as a top-level package)."""
