"""The two Copyleaks security feeds: fetch, validate, store, refresh."""
