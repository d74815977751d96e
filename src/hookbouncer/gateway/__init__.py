"""The HTTPS gateway: TLS with client certificates, routes, admin listener."""
