"""The IoT Connector domain layer (connector-spec.md): identities, provisioning, resources and
state, tags, logs and events, behind ``Device2Service``. Protocol-agnostic: the MQTT hooks and the
HTTP sidecar call into it; the broker core never imports it (tests/unit/test_import_direction.py).
"""
