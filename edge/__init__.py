"""The venuewatch edge agent: sensors on a Raspberry Pi → events → MQTT uplink."""
