"""管理: townships, villages, venues, devices and console accounts added from the console.

The inventory YAML stays the one source of truth, still editable by hand and by `provision device`.
Modules: checks (the forms' plain-word checks, pure), editor (one locked, checked, atomic edit of the file,
and new accounts), reload (every server process re-reads the file when it changes).
"""
