"""The command Beam runs for each local replay worker (pipelines/forked_workers.py):
asks the fork server at argv[1] for a worker with this process's
environment and exits with that worker's exit code.

Run as `python -I -S worker_launcher.py ADDRESS`: the standard library only,
so it starts in milliseconds.
"""
import json
import os
import socket
import sys

# What Beam's SubprocessSdkWorker puts in a worker's environment.
WORKER_ENVIRONMENT = ("CONTROL_API_SERVICE_DESCRIPTOR", "LOGGING_API_SERVICE_DESCRIPTOR",
                      "PIPELINE_OPTIONS", "WORKER_ID")


def main(address: str) -> int:
    request = {name: os.environ[name] for name in WORKER_ENVIRONMENT if name in os.environ}
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(address)
        connection.sendall(json.dumps(request).encode("utf-8") + b"\n")
        reply = b""
        while True:
            chunk = connection.recv(64)
            if not chunk:
                break
            reply += chunk
    # No exit code: the worker was killed before it could say.
    return int(reply) if reply.strip() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
