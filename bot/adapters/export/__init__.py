"""The review documents: Markdown and HTML from Jinja2 templates (`templates/`, package data) and the
incident chart as a PNG (matplotlib)."""
