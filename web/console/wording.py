"""What the console says about pauses, statuses and reasons, in one place."""

from __future__ import annotations

from queue_engine.statuses import PauseReason, Status

PAUSE_REASON = {
    PauseReason.DOMAIN_QUOTA: "Domain quota reached",
    PauseReason.IP_QUOTA: "Sending IP quota reached",
    PauseReason.IP_CONNECTION_RATE: "Connection rate limit",
    PauseReason.MANUAL: "Paused by a person",
}

PAUSE_EXPLANATION = {
    PauseReason.DOMAIN_QUOTA: "The hourly or daily quota for this recipient domain is used up; "
    "mail flows again when the quota period ends.",
    PauseReason.IP_QUOTA: "The MP is holding mail back from our sending IPs (their quota is "
    "spent or the MP throttles them).",
    PauseReason.IP_CONNECTION_RATE: "No sending IP may open another connection to this MP "
    "this minute.",
    PauseReason.MANUAL: "Someone paused this queue from the API or the console.",
}

STALE_ADVICE = {
    PauseReason.DOMAIN_QUOTA: "Check that the domain quota in the delivery policy still fits "
    "your volume, and whether the MP has lowered what it accepts from you.",
    PauseReason.IP_QUOTA: "Read the MP reply below, then check your sending IPs' reputation "
    "(Gmail Postmaster Tools, Microsoft SNDS, public blocklists); slow down, warm up or add IPs.",
    PauseReason.IP_CONNECTION_RATE: "Compare the policy's connection limits for this domain "
    "with the MP's published limits, and check that your IPs are not listed.",
    PauseReason.MANUAL: "Someone paused this queue days ago: resume it, or find out why it "
    "should stay paused.",
}

STATUS = {
    Status.REQUESTING: "Requesting",
    Status.DELIVERED: "Delivered",
    Status.SOFT_BOUNCE: "Soft bounce",
    Status.INVALID: "Invalid",
}

REASON = {
    "blacklist": "Blacklist",
    "unsubscribed": "Unsubscribed",
    "server_unreachable": "Server unreachable",
    "service_unreachable": "MP service unreachable",
    "address_format_error": "Address format error",
    "address_not_exist": "Address does not exist",
    "spam": "Rejected as spam",
    "spam_rejected": "Rejected as spam",
    "sender_recipient_rejected": "Sender or recipient settings",
    "ip_domain_rejected": "IP or domain rejected",
    "other": "Other",
}


def reason_label(reason: str | None) -> str:
    if not reason:
        return ""
    return REASON.get(reason, reason.replace("_", " ").capitalize())
