"""Blob storage for profiles, recordings and downloads: one async BlobStore protocol (port.py)
with a local-directory store (local.py, the default) and an S3-compatible one (s3.py), the key
layout (layout.py), serving headers (serving.py), retention (retention.py), and safe archives of
directories (archive.py). bootstrap.build_blob_store() picks the store from the settings.
"""
