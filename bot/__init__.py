"""Backout: an incident-response bot for GitOps teams."""

__version__ = "0.1.0"
