"""The four statuses of SPEC S2 and their sub-reasons."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    REQUESTING = "requesting"
    DELIVERED = "delivered"
    SOFT_BOUNCE = "soft_bounce"
    INVALID = "invalid"


class Category(StrEnum):
    """What an MP's answer means, as the classifier reports it (CONTRACT `category`)."""

    ADDRESS_NOT_EXIST = "address_not_exist"
    ADDRESS_FORMAT_ERROR = "address_format_error"
    SERVER_UNREACHABLE = "server_unreachable"
    SERVICE_UNREACHABLE = "service_unreachable"
    IP_DOMAIN_REJECTED = "ip_domain_rejected"
    SPAM = "spam"
    SENDER_RECIPIENT_REJECTED = "sender_recipient_rejected"
    OTHER = "other"


class PauseReason(StrEnum):
    """Why a queue holds its mail (SPEC Q4), or that a person paused it."""

    DOMAIN_QUOTA = "domain_quota"
    IP_QUOTA = "ip_quota"
    IP_CONNECTION_RATE = "ip_connection_rate"
    MANUAL = "manual"


class InvalidReason(StrEnum):
    """SPEC S2's sub-reasons of `invalid`, plus `ip_domain_rejected` as EngageLab's API has it."""

    BLACKLIST = "blacklist"
    UNSUBSCRIBED = "unsubscribed"
    SERVER_UNREACHABLE = "server_unreachable"
    ADDRESS_FORMAT_ERROR = "address_format_error"
    ADDRESS_NOT_EXIST = "address_not_exist"
    SPAM = "spam"
    SENDER_RECIPIENT_REJECTED = "sender_recipient_rejected"
    IP_DOMAIN_REJECTED = "ip_domain_rejected"
    OTHER = "other"


class SoftBounceReason(StrEnum):
    SERVICE_UNREACHABLE = "service_unreachable"
    IP_DOMAIN_REJECTED = "ip_domain_rejected"
    ADDRESS_NOT_EXIST = "address_not_exist"
    SPAM_REJECTED = "spam_rejected"
    SENDER_RECIPIENT_REJECTED = "sender_recipient_rejected"
    OTHER = "other"


_INVALID_FROM_CATEGORY = {
    Category.ADDRESS_NOT_EXIST: InvalidReason.ADDRESS_NOT_EXIST,
    Category.ADDRESS_FORMAT_ERROR: InvalidReason.ADDRESS_FORMAT_ERROR,
    Category.SERVER_UNREACHABLE: InvalidReason.SERVER_UNREACHABLE,
    # S2 gives `invalid` no "service unreachable": the MP's own service failing
    # permanently means its MX cannot take the mail, which is what this reason says.
    Category.SERVICE_UNREACHABLE: InvalidReason.SERVER_UNREACHABLE,
    Category.SPAM: InvalidReason.SPAM,
    Category.SENDER_RECIPIENT_REJECTED: InvalidReason.SENDER_RECIPIENT_REJECTED,
    Category.IP_DOMAIN_REJECTED: InvalidReason.IP_DOMAIN_REJECTED,
    Category.OTHER: InvalidReason.OTHER,
}

_SOFT_BOUNCE_FROM_CATEGORY = {
    Category.ADDRESS_NOT_EXIST: SoftBounceReason.ADDRESS_NOT_EXIST,
    Category.ADDRESS_FORMAT_ERROR: SoftBounceReason.ADDRESS_NOT_EXIST,
    Category.SERVER_UNREACHABLE: SoftBounceReason.SERVICE_UNREACHABLE,
    Category.SERVICE_UNREACHABLE: SoftBounceReason.SERVICE_UNREACHABLE,
    Category.IP_DOMAIN_REJECTED: SoftBounceReason.IP_DOMAIN_REJECTED,
    Category.SPAM: SoftBounceReason.SPAM_REJECTED,
    Category.SENDER_RECIPIENT_REJECTED: SoftBounceReason.SENDER_RECIPIENT_REJECTED,
    Category.OTHER: SoftBounceReason.OTHER,
}


def invalid_reason(category: Category) -> InvalidReason:
    return _INVALID_FROM_CATEGORY[category]


def soft_bounce_reason(category: Category) -> SoftBounceReason:
    return _SOFT_BOUNCE_FROM_CATEGORY[category]


REASONS: dict[Status, frozenset[str]] = {
    Status.REQUESTING: frozenset(),
    Status.DELIVERED: frozenset(),
    Status.SOFT_BOUNCE: frozenset(SoftBounceReason),
    Status.INVALID: frozenset(InvalidReason),
}
"""Which sub-reasons each status can carry (for validating filters)."""
