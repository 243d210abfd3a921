"""Deciding in seconds whether the Hugging Face hub can be reached.

``huggingface_hub`` retries connection errors with exponential back-off (1, 2, 4, 8, 8 s per request), and
transformers asks for several files per model, so an unreachable hub costs minutes and hundreds of ``Retrying in
8s`` lines before the final error. Every hub access of this package first asks :func:`hub_offline`: offline mode
(``HF_HUB_OFFLINE=1``) or one failed probe of ``HF_ENDPOINT`` (a single HEAD request with a short timeout, no
retries) turn the access into a cache-only lookup (``local_files_only=True``), which fails at once when the file is
not cached. The probe's answer is kept for a minute per endpoint.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from huggingface_hub import constants
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.utils import get_session

PROBE_TIMEOUT_S = 3.0
PROBE_TTL_S = 60.0
_probes: dict[str, tuple[float, bool]] = {}


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set or ``HF_ENDPOINT`` does not answer within a few seconds."""
    if constants.is_offline_mode():
        return True
    endpoint = constants.ENDPOINT
    now = time.monotonic()
    cached = _probes.get(endpoint)
    if cached is not None and now - cached[0] < PROBE_TTL_S:
        return not cached[1]
    try:
        get_session().head(endpoint, timeout=PROBE_TIMEOUT_S, follow_redirects=False)
        reachable = True  # any HTTP answer, even an error status, means the server is there
    except Exception:  # connection refused, DNS failure, timeout, proxy error: all mean "not reachable now"
        reachable = False
    _probes[endpoint] = (now, reachable)
    return not reachable


def cache_only(requested: bool = False, *sources: str | os.PathLike) -> bool:
    """The ``local_files_only`` to pass to hub calls: as requested, or forced when the hub cannot be reached.

    ``sources`` (what the calls load) that are all local folders need no hub: the answer is ``True`` without a probe,
    so loading local weights never touches the network (and costs no probe timeout offline)."""
    if sources and all(Path(source).is_dir() for source in sources):
        return True
    return requested or hub_offline()


def offline_reason() -> str:
    """Why hub access is cache-only, for error messages."""
    if constants.is_offline_mode():
        return "hub access is off (HF_HUB_OFFLINE=1)"
    return f"the hub {constants.ENDPOINT} cannot be reached"


PUBLIC_HUB = "https://huggingface.co"


def hub_failure(err: BaseException, *, cache_only_now: bool) -> str:
    """Why a library call could not fetch a model, in words that hold here. transformers' messages name the public
    hub and suggest a token or an internet check whatever the configuration; here the reason is the cache-only one
    when the hub was not asked (``HF_HUB_OFFLINE=1``, unreachable, ``local_files_only``), and the endpoint actually
    asked (``HF_ENDPOINT``) when the library's own line names another or gives advice that does not apply."""
    if cache_only_now:
        reason = offline_reason() if hub_offline() else "local_files_only is set"
        return f"not in the Hugging Face cache, and {reason}"
    first = next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)
    chain, cause = [], err
    while cause is not None and len(chain) < 10:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    absent = any(isinstance(e, (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError)) for e in chain)
    custom_endpoint = constants.ENDPOINT.rstrip("/") != PUBLIC_HUB
    advice = re.search(r"\btoken\b|internet connection", first)
    if absent or advice or first.startswith("404") or (custom_endpoint and PUBLIC_HUB in first):
        return f"the hub {constants.ENDPOINT} does not serve it ({type(err).__name__})"
    return first
