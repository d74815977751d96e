"""A Copyleaks emulator: the security API and a webhook sender, on loopback."""
