"""Virtual keys, tenants and authentication."""
