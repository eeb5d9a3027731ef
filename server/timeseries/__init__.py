"""Time series: telemetry and sensor levels as InfluxDB line protocol, through a durable outbox in SQL, to any
server that speaks the InfluxDB v2 write API (InfluxDB 2, VictoriaMetrics). docs/timeseries.md.

- `lineproto`: points to lines (escaping, timestamps). Pure.
- `schema`: measurements, tags and fields of heartbeats and events. Pure.
- `recorder`: what an ingest batch adds, in its transaction (with the per-minute rollups of server/rollups.py).
- `outbox`: the table's writer thread: batches, retries with backoff, bounded size.
"""
