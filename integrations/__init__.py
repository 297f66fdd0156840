"""hjplug.integrations (import it as hjplug.integrations, never as a top-level package)."""
