"""Corpora: registry, download with checksums, preparation into token ids, batch layout."""
