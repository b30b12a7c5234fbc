"""Code both the supervisor and the workers import: schemas, paths, logging."""
