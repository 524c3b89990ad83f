"""The SPEC: pathway definitions as data (YAML), their schema, loader and validator; the territory."""
