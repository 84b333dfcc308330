"""Google's Pub/Sub emulator on 127.0.0.1, started and stopped from Python.

    with PubSubEmulator() as emulator:
        emulator.create_topic("projects/demo/topics/events")
        ...  # clients find it through PUBSUB_EMULATOR_HOST=emulator.host

The emulator keeps everything in memory: after `restart()` topics and
subscriptions must be created again (`create_topic`/`create_subscription`
are idempotent).
"""
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Optional

_KNOWN_ROOTS = ("/usr/lib/google-cloud-sdk", "/usr/share/google-cloud-sdk", "/google-cloud-sdk")


def emulator_binary() -> str:
    """The emulator's launcher: $PUBSUB_EMULATOR_BIN, or the one in the Cloud SDK."""
    explicit = os.environ.get("PUBSUB_EMULATOR_BIN")
    if explicit:
        return explicit
    roots = list(_KNOWN_ROOTS)
    gcloud = shutil.which("gcloud")
    if gcloud:
        roots.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(gcloud))))
    for root in roots:
        found = glob.glob(os.path.join(root, "platform", "pubsub-emulator", "bin", "cloud-pubsub-emulator"))
        if found:
            return found[0]
    raise FileNotFoundError(
        "the Pub/Sub emulator is not installed: install the Cloud SDK component "
        "(apt-get install google-cloud-cli-pubsub-emulator) or set PUBSUB_EMULATOR_BIN")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PubSubEmulator:
    def __init__(self, port: Optional[int] = None, log_path: Optional[str] = None):
        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        self._log_path = log_path or os.path.join(tempfile.gettempdir(), f"pubsub-emulator-{self.port}.log")
        self._process: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 90) -> "PubSubEmulator":
        log = open(self._log_path, "ab")
        self._process = subprocess.Popen(
            [emulator_binary(), "--host=127.0.0.1", f"--port={self.port}"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the Pub/Sub emulator exited; see {self._log_path}")
            if self._answers():
                return self
            time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"the Pub/Sub emulator did not answer on {self.host} within {timeout} s")

    def stop(self) -> None:
        if self._process is None:
            return
        try:
            os.killpg(self._process.pid, signal.SIGTERM)
            self._process.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
        self._process = None

    def restart(self, down_seconds: float = 0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                pass
        except OSError:
            return False
        try:
            self.publisher().list_topics(request={"project": "projects/probe"}, timeout=2)
            return True
        except Exception:  # not serving gRPC yet
            return False

    def publisher(self):
        from google.cloud import pubsub_v1
        os.environ["PUBSUB_EMULATOR_HOST"] = self.host
        return pubsub_v1.PublisherClient()

    def subscriber(self):
        from google.cloud import pubsub_v1
        os.environ["PUBSUB_EMULATOR_HOST"] = self.host
        return pubsub_v1.SubscriberClient()

    def create_topic(self, topic: str) -> str:
        from google.api_core.exceptions import AlreadyExists
        try:
            self.publisher().create_topic(request={"name": topic})
        except AlreadyExists:
            pass
        return topic

    def create_subscription(self, topic: str, subscription: str) -> str:
        from google.api_core.exceptions import AlreadyExists
        self.create_topic(topic)
        try:
            self.subscriber().create_subscription(
                request={"name": subscription, "topic": topic, "ack_deadline_seconds": 60})
        except AlreadyExists:
            pass
        return subscription
