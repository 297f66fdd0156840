"""FX side of hjplug.passes: graph helpers, match records, one rule per file, runner, rewrite."""
