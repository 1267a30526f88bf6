"""Fleetgate: an MQTT 3.1.1 broker and IoT device gateway."""

__version__ = "0.1.0"
