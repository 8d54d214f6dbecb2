"""Notifications: channels (`channels`), what they say (`events`), the decision written with
each event (`router`, into the outbox of `monitor.store.outbox`), and the delivery in the
background (`delivery`, through `transport`). Apprise is imported only by `transport`, and only
when a channel uses it."""
