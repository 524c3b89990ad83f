"""All I/O of pathways: read-model projection and e-mail notifications."""
