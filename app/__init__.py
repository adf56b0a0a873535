"""QuickAnalysis served entry points: dashboard app, REST handlers, server/CLI, settings."""
