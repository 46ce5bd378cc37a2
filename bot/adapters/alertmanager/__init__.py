"""Alertmanager: its webhook payload parsed once at the border and mapped to domain deliveries."""
