"""Redis adapters: connections, the Lua token bucket, limits storage. Foreign errors stop here."""
