"""The web console: login, live queue status, email status (issue 7)."""
