"""The `baas` command line: serve, init, schema, keys."""
