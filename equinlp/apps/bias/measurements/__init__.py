"""Local ``evaluate`` modules (loaded by path: nothing is fetched from the Hub)."""
