"""Development scripts (not part of the shipped packages)."""
