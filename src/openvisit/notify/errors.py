"""How a channel says that a message did not go out."""

from __future__ import annotations


class DeliveryError(Exception):
    """A message was not delivered.

    `permanent`: trying again cannot help (the server refused the address or the message for good), so the
    row is marked failed at once. `connection`: the channel itself is down (no connection, login refused),
    so the other messages of the batch for that channel are not even tried: they would wait for the same
    timeout and fail the same way."""

    def __init__(self, message: str, *, permanent: bool = False, connection: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.connection = connection
