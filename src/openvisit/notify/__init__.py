"""Notifications: rendering outbox rows into messages in the reader's language (messages), calendar
invitations (ics), email over SMTP (email), text messages through a pluggable gateway (sms), the
reminder horizons (reminders), and the worker that claims due rows and delivers them (worker).

The outbox rows themselves are written by the services, in the same transaction as the event."""
