"""Export formats: rows in, bytes out, a chunk at a time (docs/exports.md).

The writers know formats, never the database: services/exports.py and services/stackviz.py
run the queries and hand the rows over. common.py (chunk size, content types, times, JSON,
file names), tabular.py (CSV, JSON, JSON Lines), junit.py (JUnit XML), subunit.py (subunit
v2) and tar.py (the gzip'd tarball the stackviz dataset is written into).
"""
