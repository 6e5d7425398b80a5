"""Plain HTTP/1.1 requests to a member, as curl or a load balancer's probe makes them."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


def http_get(url: str, *, method: str = "GET", timeout: float = 10.0) -> Answer:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(response.status, response.headers.get("Content-Type", ""), response.read())
    except urllib.error.HTTPError as err:
        return Answer(err.code, err.headers.get("Content-Type", ""), err.read())
