"""The `baas` command line: serve, init, schema, keys, superuser, users, mail, settings,
signing-keys, storage, jobs and push (wired together in `cli/main.py`)."""
