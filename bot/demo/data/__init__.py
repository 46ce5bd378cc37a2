"""The demo's package data: recorded Alertmanager payloads (`alertmanager/`) and playbooks."""
