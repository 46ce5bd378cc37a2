"""Slack through slack_sdk: Block Kit messages (`blocks`) and their delivery from the outbox
(`delivery`, queued by the Notifier in `notifier`); the bolt listeners that receive from Slack
are an entrypoint (`bot.entrypoints.slack_app`)."""
