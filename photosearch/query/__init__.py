"""Queries over an indexed library: text, image and face search, duplicates, people, tags, events."""
