"""Talking to a provider's API: its failures as one clear sentence, and bounded retries.

Every provider's SDK fails in its own way (pydo raises azure-core's HttpResponseError and
sometimes returns an error body, hcloud raises APIException with a code, boto3 raises
ClientError). Each provider's driver turns those into a `Failure`; from there on, which
failures are retried, how long to wait, and what the user reads are decided here, once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from machines.lib.errors import DriverError

#: Attempts after the first one, for rate limits and (on calls safe to repeat) outages.
RETRIES = 4
#: The longest wait before a retry, whatever the provider's headers ask for.
MAX_WAIT = 60.0
RATE_LIMIT_CODES = {
    "too_many_requests",
    "rate_limit_exceeded",
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
}
# AWS's answers to keys it does not know or cannot check (with 400 or 403).
UNAUTHORIZED_CODES = {
    "unauthorized",
    "AuthFailure",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidAuthenticationToken",
}
# Another action holds the resource for a moment; trying again is what the providers advise.
BUSY_CODES = {
    "conflict",
    "locked",
    "resource_in_use",
    "AnotherOperationInProgress",
    "DependencyViolation",
}


class CloudError(DriverError):
    """A provider said no, or did not answer, or a VM never got where it had to: one sentence."""


@dataclass(frozen=True)
class Failure:
    """An answer from a provider's API that was not a success, in the provider's terms."""

    status: int | None  # the HTTP status; None when nothing answered
    code: str  # the provider's error id ("unauthorized", "rate_limit_exceeded", ...)
    message: str
    retry_after: float | None = None  # seconds, from the provider's headers

    @property
    def rate_limited(self) -> bool:
        return self.status == 429 or self.code in RATE_LIMIT_CODES

    @property
    def unauthorized(self) -> bool:
        return self.status == 401 or self.code in UNAUTHORIZED_CODES

    @property
    def not_found(self) -> bool:
        # EC2 answers 400 with codes such as InvalidInstanceID.NotFound.
        return self.status == 404 or self.code == "not_found" or self.code.endswith(".NotFound")

    @property
    def busy(self) -> bool:
        return self.code in BUSY_CODES

    @property
    def outage(self) -> bool:
        return self.status is None or self.status >= 500

    def detail(self) -> str:
        status = f"{self.status} " if self.status else ""
        message = self.message.rstrip(".")
        return f"{status}{self.code}: {message}" if message else f"{status}{self.code}"


class ProviderFailure(Exception):
    """Raised by a provider's adapter when an SDK returned (rather than raised) an error."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.detail())
        self.failure = failure


def sentence(
    provider: str,
    what: str,
    failure: Failure,
    credentials: str = "API token",
    access_hint: str = "the token needs read and write access",
) -> str:
    """What the user reads when a call finally failed."""
    if failure.status is None:
        return f"{provider}'s API did not answer while {what}: {failure.message}"
    if failure.unauthorized:
        noun = credentials.split()[-1]
        other = "valid ones" if noun.endswith("s") else "a valid one"
        return (
            f"{provider} refused the {credentials} ({failure.detail()}): check the {noun} of "
            f"the account, or give {other}"
        )
    if failure.status == 403:
        return f"{provider} did not allow {what} ({failure.detail()}): {access_hint}"
    if failure.rate_limited:
        return (
            f"{provider} kept refusing requests as too many (rate limit) while {what}, "
            f"{RETRIES + 1} times; try again in a few minutes"
        )
    if failure.outage:
        return f"{provider} failed while {what} ({failure.detail()}); try again later"
    return f"{provider} refused {what} ({failure.detail()})"


def backoff(attempt: int) -> float:
    return min(MAX_WAIT, 2.0**attempt)


def retryable(failure: Failure, idempotent: bool) -> bool:
    """Rate limits and busy resources: the call was not carried out, so it may be repeated.
    Outages: only calls that do the same thing twice (a create might have happened)."""
    return failure.rate_limited or failure.busy or (idempotent and failure.outage)


def with_retries[T](
    provider: str,
    what: str,
    call: Callable[[], T],
    failure_of: Callable[[BaseException], Failure | None],
    log: Callable[[str], None],
    idempotent: bool = True,
    missing_ok: bool = False,
    retries: int = RETRIES,
    sleep: Callable[[float], None] = time.sleep,
    credentials: str = "API token",
    access_hint: str = "the token needs read and write access",
) -> T | None:
    """Run one API call; retry what may be retried, a bounded number of times, saying so.
    With `missing_ok`, "not found" is an answer (None), not a failure."""
    attempt = 0
    while True:
        try:
            return call()
        except Exception as error:
            failure = error.failure if isinstance(error, ProviderFailure) else failure_of(error)
            if failure is None:
                raise
            if missing_ok and failure.not_found:
                return None
            if attempt >= retries or not retryable(failure, idempotent):
                raise CloudError(
                    sentence(provider, what, failure, credentials, access_hint)
                ) from None
            wait = min(MAX_WAIT, failure.retry_after or backoff(attempt))
            reason = "rate limit" if failure.rate_limited else failure.detail()
            log(
                f"{provider} answered {reason} while {what}; trying again in {wait:.0f} s "
                f"(attempt {attempt + 2} of {retries + 1})"
            )
            sleep(wait)
            attempt += 1
