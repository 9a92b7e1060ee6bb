"""Data shipped with vpccni: the instance table and its provenance (see PROVENANCE.md)."""
