"""hjplug.kernels (import it as hjplug.kernels, never as a top-level package)."""
