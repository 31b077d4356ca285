"""overrides-sync: Mimir's runtime overrides into Redis."""
