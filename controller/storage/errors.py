"""Storage-specific error statuses, on the shared FarmError base so API and CLI report them."""

from controller.errors import Invalid


class TooLarge(Invalid):
    """An upload over its size limit (HTTP 413)."""

    status = 413
