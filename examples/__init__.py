"""Small runnable agents, one per way in (README.md in this folder)."""
