"""Federation: the member registry and live cross-member queries (``docs/federation.md``)."""
