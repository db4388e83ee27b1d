"""What the serve tests share: a model trained in a few steps, and a `bnlab serve` process on a
free port (--port 0) that they read the address of and stop with SIGINT."""
import atexit
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train_model(bnlab, workdir, steps=80):
    """A seed network after `steps` steps (about 90% accurate at 80): enough to read a clear digit."""
    weights = os.path.join(workdir, "model.safetensors")
    subprocess.run([bnlab, "train", "--model", "seed", "--max-steps", str(steps), "--limit-test", "200",
                    "--save", weights, "--checkpoint", os.path.join(workdir, "train-checkpoint.safetensors")],
                   check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return weights


class Server:
    def __init__(self, bnlab, *args, cwd=REPO):
        self.proc = subprocess.Popen([bnlab, "serve", "--port", "0", *args], cwd=cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        atexit.register(lambda: self.proc.poll() is None and self.proc.kill())  # a failed test leaves none behind
        line = self.proc.stdout.readline()
        m = re.search(r"http://([\d.]+):(\d+)/", line)
        if not m:
            self.proc.kill()
            sys.exit(f"FAIL: bnlab serve printed no address: {line!r} {self.proc.stderr.read()!r}")
        self.host, self.port = m.group(1), int(m.group(2))
        self.url = f"http://{self.host}:{self.port}"

    def request(self, path, body=None, method=None, headers=None, raw=None):
        """(status, parsed JSON or text) of one request."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method or ("POST" if data is not None else "GET"),
                                     headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=60) as res:
                status, text = res.status, res.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def stop(self, timeout=30):
        """SIGINT, as Ctrl-C; returns (exit status, stdout, stderr)."""
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err


def workdir():
    return tempfile.mkdtemp(prefix="bnlab-serve-test-")
