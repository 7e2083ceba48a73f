"""Graph rewrites, one per file, and the lists that chain them (`hwgen.transforms.pipeline`)."""
