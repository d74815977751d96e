"""The two Copyleaks security feeds: fetch, validate, store, refresh.

- `validate`: one entry at a time, strict (`parse_network`,
  `normalize_thumbprint`).
- `parse`: a response body to entries, or a rejection naming what arrived.
- `fetch` and `login`: HTTPS with limits, retries and a bearer token.
- `store` and `history`: atomic snapshot files and their versions.
- `manager` and `scheduler`: the lists in force and when to refresh them.

Import `FeedManager` from `hookbouncer.feeds.manager`. This package module
imports nothing, because `hookbouncer.certificates` imports `validate`
and the manager imports `certificates`.
"""
