"""Overcooked-AI: two-chef cooperation as a text environment."""
