"""Preparing a TFDS dataset without hanging when there is no network.

TFDS retries a failed download with back-off for minutes (3.5 min for an
unprepared cifar100 offline) before it raises. `prepare` first asks whether
the network is reachable at all: a TCP connection within PROBE_TIMEOUT
seconds to TFDS's storage mirror (GCS_HOST) or to the host of the dataset's
homepage, usually the one it downloads from (or to the HTTPS proxy, if set).
If it is, or the dataset is prepared already, or it is built from manually
downloaded files, the builder runs as usual; if not, `Offline` is raised
before any download is attempted (an abandoned download thread could not be
stopped: TFDS's worker threads would hold the process open at exit).
"""

from __future__ import annotations

import socket
import threading
import urllib.parse
import urllib.request

import tensorflow_datasets as tfds

GCS_HOST = "storage.googleapis.com"  # TFDS's mirror of many datasets
PROBE_TIMEOUT = 3.0  # s per probe (DNS lookup included)
_TFDS_PREPARE = tfds.core.DatasetBuilder.download_and_prepare


def _code(fn):
  """The code object behind a (possibly wrapt-wrapped) function: TFDS wraps its methods."""
  return getattr(fn, "__code__", None)


class Offline(Exception):
  """The dataset must be downloaded and no network is reachable."""


def _endpoints(homepage: str | None = None) -> list[tuple[str, int]]:
  proxy = urllib.request.getproxies().get("https")
  if proxy:  # behind a proxy, reaching the proxy is what a download needs
    parsed = urllib.parse.urlparse(proxy if "://" in proxy else "http://" + proxy)
    return [(parsed.hostname, parsed.port or 80)]
  hosts = [GCS_HOST]
  home = urllib.parse.urlparse(homepage or "").hostname
  if home and home not in hosts:
    hosts.append(home)
  return [(host, 443) for host in hosts]


def _bounded(fn, timeout: float):
  """-> (finished, result, error) of fn() run in a daemon thread for up to timeout s."""
  out = {}

  def run():
    try:
      out["result"] = fn()
    except BaseException as e:  # handed to the caller's thread
      out["error"] = e

  thread = threading.Thread(target=run, daemon=True)
  thread.start()
  thread.join(timeout)
  return not thread.is_alive(), out.get("result"), out.get("error")


def reachable(homepage: str | None = None) -> bool:
  """True if one endpoint (module doc) accepts a TCP connection within PROBE_TIMEOUT."""
  def connect(endpoint):
    with socket.create_connection(endpoint, timeout=PROBE_TIMEOUT):
      return True
  for endpoint in _endpoints(homepage):
    # getaddrinfo has no timeout of its own: bound the whole attempt.
    finished, ok, _ = _bounded(lambda: connect(endpoint), PROBE_TIMEOUT + 1)
    if finished and ok:
      return True
  return False


def prepare(builder: tfds.core.DatasetBuilder) -> None:
  """builder.download_and_prepare(), raising Offline instead of retrying for minutes."""
  needs_network = not (
      builder.is_prepared() or builder.MANUAL_DOWNLOAD_INSTRUCTIONS is not None
      # A preparation replaced by another (tfds.testing.mock_data) downloads nothing.
      or _code(type(builder).download_and_prepare) is not _code(_TFDS_PREPARE))
  if needs_network and not reachable(builder.info.homepage):
    where = ", ".join(f"{h}:{p}" for h, p in _endpoints(builder.info.homepage))
    raise Offline(f"no network is reachable (no connection to {where} within "
                  f"{PROBE_TIMEOUT:g} s), so nothing was downloaded")
  builder.download_and_prepare()
