"""The venuewatch county server: ingest → store → rules → alerts → console and API."""
