"""The supervisor process: registry, worker lifecycle, backoff, CLI entry."""
