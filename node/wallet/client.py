"""A small client for a node's HTTP API (docs/api.md): status, params, accounts, txs and
the compute market (providers, jobs, job outputs, market statistics).

Transport failures become NodeUnreachable (exit 4); a 422 (refused) or 503 (mempool full)
from `POST /txs` becomes TxRejected with the node's code and message (exit 5); a 409 from
`GET /jobs/{id}/output` (nothing committed) becomes JobFailed (exit 6); any other
unexpected answer is a WalletError naming the URL and the status.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from node.config import ApiConfig
from node.wallet.errors import (
    JobFailed,
    NodeUnreachable,
    ProviderUnavailable,
    TxRejected,
    WalletError,
)

if TYPE_CHECKING:
    import httpx

NODE_ENV = "JEVONS_NODE"
DEFAULT_NODE = f"http://{ApiConfig.listen}"
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 10.0
WAIT_READ_TIMEOUT_S = 75.0  # the node waits up to 60 s for inclusion
OUTPUT_READ_TIMEOUT_S = 120.0  # the node fetches the output from the provider first


def default_node_url() -> str:
    return os.environ.get(NODE_ENV) or DEFAULT_NODE


def normalize_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    if not url.startswith(("http://", "https://")):
        raise WalletError(f"node URL {url!r} must be http:// or https://")
    return url


class NodeClient:
    def __init__(self, url: str) -> None:
        import httpx  # imported here: it costs every `jevons` command 0.15 s at start-up

        self.url = normalize_url(url)
        # plain http needs no TLS context (building one loads the CA bundle: 40 ms of CPU)
        self._http = httpx.Client(base_url=self.url, verify=self.url.startswith("https://"),
                                  timeout=httpx.Timeout(READ_TIMEOUT_S,
                                                        connect=CONNECT_TIMEOUT_S))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> NodeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        import httpx

        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise NodeUnreachable(f"node {self.url} did not answer {method} {path} in time "
                                  f"({type(exc).__name__}); is it running and in sync?") from exc
        except httpx.TransportError as exc:
            reason = str(exc) or type(exc).__name__
            raise NodeUnreachable(f"cannot reach node {self.url}: {reason}; start a node or "
                                  f"pass --node URL (or set {NODE_ENV})") from exc

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise NodeUnreachable(f"{self.url}{response.request.url.path} answered HTTP "
                                  f"{response.status_code} without JSON; is --node a Jevons "
                                  "node API?") from exc

    def _get(self, path: str) -> Any:
        response = self._request("GET", path)
        body = self._json(response)
        if response.status_code != 200:
            raise self._unexpected(response, body)
        return body

    def _get_or_none(self, path: str) -> Any:
        """The answer to GET `path`, or None on 404 (no such object)."""
        response = self._request("GET", path)
        body = self._json(response)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._unexpected(response, body)
        return body

    def _unexpected(self, response: httpx.Response, body: Any) -> WalletError:
        if isinstance(body, dict) and "error" in body:
            return WalletError(f"node {self.url} refused {response.request.method} "
                               f"{response.request.url.path}: {body['error']}: "
                               f"{body.get('message', '')}")
        return WalletError(f"node {self.url} answered HTTP {response.status_code} to "
                           f"{response.request.method} {response.request.url.path}")

    def status(self) -> dict[str, Any]:
        body = self._get("/status")
        if not isinstance(body, dict) or not isinstance(body.get("chain_id"), str):
            raise NodeUnreachable(f"{self.url}/status has no chain_id; is --node a Jevons "
                                  "node API?")
        return body

    def account(self, address: str) -> dict[str, Any]:
        return self._get(f"/accounts/{address}")

    def params(self) -> dict[str, Any]:
        """The chain's parameters (the `params` object of `GET /params`)."""
        body = self._get("/params")
        if not isinstance(body, dict) or not isinstance(body.get("params"), dict):
            raise NodeUnreachable(f"{self.url}/params has no params; is --node a Jevons "
                                  "node API?")
        return body["params"]

    def tx(self, tx_hash: str) -> dict[str, Any] | None:
        """The node's view of a tx, or None when it is neither committed nor pending."""
        return self._get_or_none(f"/txs/{tx_hash}")

    def providers(self) -> list[dict[str, Any]]:
        return self._get("/providers")["providers"]

    def provider(self, address: str) -> dict[str, Any] | None:
        """A registered provider, or None when the address is not one."""
        return self._get_or_none(f"/providers/{address}")

    def job(self, job_id: str) -> dict[str, Any] | None:
        """A job as the chain holds it, or None when no block holds its SubmitJob."""
        return self._get_or_none(f"/jobs/{job_id}")

    def market(self) -> dict[str, Any]:
        return self._get("/market")

    def job_output(self, job_id: str) -> tuple[bytes, str]:
        """The job's output as canonical array bytes and the root the node checked them
        against (header x-jevons-root). JobFailed when nothing is committed (409);
        ProviderUnavailable when the node could not fetch it from the provider (502)."""
        import httpx

        path = f"/jobs/{job_id}/output"
        response = self._request("GET", path, timeout=httpx.Timeout(
            OUTPUT_READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S))
        if response.status_code == 200:
            return response.content, response.headers.get("x-jevons-root", "")
        body = self._json(response)
        message = body.get("message", "") if isinstance(body, dict) else ""
        if response.status_code == 409:
            raise JobFailed(message or f"job {job_id} has no committed result")
        if response.status_code == 502:
            raise ProviderUnavailable(f"node {self.url} could not fetch the output from the "
                                      f"job's provider: {message}; try again later")
        if response.status_code == 503:
            raise WalletError(f"node {self.url} is busy: {message} (or ask another node)")
        raise self._unexpected(response, body)

    def broadcast(self, raw: bytes, wait: bool) -> dict[str, Any]:
        """POST /txs; returns the node's answer (status pending or committed)."""
        import httpx

        timeout = WAIT_READ_TIMEOUT_S if wait else READ_TIMEOUT_S
        response = self._request("POST", "/txs", json={"tx": raw.hex(), "wait": wait},
                                 timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT_S))
        body = self._json(response)
        if response.status_code in (422, 503) and isinstance(body, dict):
            raise TxRejected(str(body.get("error", "rejected")), str(body.get("message", "")))
        if response.status_code not in (200, 202):
            raise self._unexpected(response, body)
        return body
