"""bnlab serve over HTTP: bad and hostile requests get a clear 4xx and the server keeps serving;
looking never changes the served model; one training run at a time (409); a run nobody listens
to stops by itself; a finished run is saved under --save-dir and served; Ctrl-C exits cleanly; a
port in use is a one-line error.

usage: serve_http_test.py path/to/bnlab"""
import json
import os
import socket
import struct
import subprocess
import sys
import time

from serve_common import REPO, Server, train_model, workdir

failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def stroke_one(side=56):
    px = [0] * (side * side)
    for y in range(8, side - 8):
        for x in range(side // 2 - 3, side // 2 + 4):
            px[y * side + x] = 255
    return {"width": side, "height": side, "pixels": px}


def safetensor(path, name):
    """One float32 tensor of a safetensors file, read independently of bnlab."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        begin, end = header[name]["data_offsets"]
        f.seek(8 + n + begin)
        raw = f.read(end - begin)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def wait_state(s, run_id, states, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        _, runs = s.request("/api/runs")
        run = next((r for r in runs if r["id"] == run_id), None)
        if run and run["state"] in states:
            return run
        time.sleep(0.2)
    return None


def main():
    bnlab = os.path.abspath(sys.argv[1])
    work = workdir()
    weights = train_model(bnlab, work, steps=20)
    saves = os.path.join(work, "saves")
    s = Server(bnlab, "--weights", weights, "--save-dir", saves)
    check(s.host == "127.0.0.1" and s.port > 0, f"--port 0 picked a free port and printed it: {s.url}")

    status, page = s.request("/")
    check(status == 200 and "bnlab" in page, "GET / serves the embedded page")
    check(s.request("/app.js")[0] == 200 and s.request("/style.css")[0] == 200, "the page's script and style are served")
    for path in ("/nope", "/api/nope", "/app.js.map"):
        status, body = s.request(path)
        check(status == 404 and "no such path" in body.get("error", ""), f"GET {path}: 404 with a message ({body})")
    status, body = s.request("/api/look", raw=b"{not json")
    check(status == 400 and body["error"] == "request body: malformed JSON", f"malformed JSON: 400 ({body})")
    status, body = s.request("/api/train", {"lr": "fast"})
    check(status == 400 and "lr" in body["error"], f"a field of the wrong type: 400 naming it ({body})")
    status, body = s.request("/api/train", {"preset": "no-such-net"})
    check(status == 400 and "no-such-net" in body["error"], f"an unknown preset: 400 ({body})")
    status, body = s.request("/api/train", {"spec": "conv1: Conv2d out_channels=banana\n"})
    check(status == 400 and "pasted spec:1:" in body["error"], f"a bad pasted spec: 400 with file:line ({body})")
    status, body = s.request("/api/look", {**stroke_one(), "pixels": [0] * 10})
    check(status == 400 and "pixels" in body["error"], f"pixels of the wrong count: 400 ({body})")
    status, body = s.request("/api/look", {"width": 4, "height": 4, "pixels": [0] * 16})
    check(status == 400 and "blank" in body["error"], f"a blank drawing: 400 ({body})")
    try:
        status, body = s.request("/api/look", raw=b"[" + b"0," * (1 << 20) + b"0]")
    except OSError as e:  # the server may answer and close before reading it all
        status, body = 413, str(e)
    check(status == 413, f"a body over 1 MiB: 413 ({str(body)[:80]})")

    status, body = s.request("/api/info", headers={"Host": f"evil.example:{s.port}"})
    check(status == 403, f"another Host (DNS rebinding): 403 ({body})")
    status, body = s.request("/api/info", headers={"Origin": "http://evil.example"})
    check(status == 403, f"another Origin: 403 ({body})")
    check(s.request("/api/info", headers={"Host": f"localhost:{s.port}"})[0] == 200, "Host localhost:<port> is answered")
    status, info = s.request("/api/info")
    check(status == 200 and info["model"].startswith("seed,") and "seed-nobn" in info["presets"], f"still serving after all that: {info}")

    # Looking never changes the served model: eval before and after training-mode looks agree
    # bit for bit, and the running statistics are the checkpoint's.
    def look(mode, mates):
        status, r = s.request("/api/look", {**stroke_one(), "mode": mode, "mates": mates})
        assert status == 200, r
        return r
    eval1 = look("eval", 1)
    check(look("eval", 7)["probabilities"] == eval1["probabilities"], "eval mode: new batch-mates change nothing")
    t1, t2 = look("train", 1), look("train", 2)
    check(t1["probabilities"] != t2["probabilities"] and t1["probabilities"] != eval1["probabilities"],
          "training mode: the batch-mates move the digit's probabilities")
    check(look("train", 1)["probabilities"] == t1["probabilities"], "training mode: the same batch-mates, the same numbers")
    after = look("eval", 1)
    check(after["probabilities"] == eval1["probabilities"], "eval after training-mode looks: bit for bit the same")
    for b in after["bn"]:
        for key, tensor in (("running_mean", "running_mean"), ("running_var", "running_var"), ("gamma", "weight")):
            want = safetensor(weights, f"{b['name']}.{tensor}")
            check(b[key] == want, f"{b['name']}.{tensor} is the checkpoint's after training-mode looks")
    bn0 = t1["bn"][0]
    check(bn0["name"] == "conv1_bn" and len(bn0["batch_mean"]) == 32 and t1["batch"]["size"] == 64,
          "the look reports conv1_bn's 32 channels over a batch of 64")

    # One training run at a time; the server keeps answering while it runs.
    status, started = s.request("/api/train", {"preset": "seed", "lr": 1.0, "steps": 5000})
    check(status == 202, f"POST /api/train: 202 ({started})")
    status, body = s.request("/api/train", {"preset": "seed-nobn"})
    check(status == 409, f"a second run while one runs: 409 ({body})")
    check(s.request("/api/info")[1]["running"] is True, "still serving during the run")
    check(s.request(f"/api/runs/{started['id']}/save", {})[0] == 409, "saving a running run: 409")
    s.request("/api/train/stop", {})
    run = wait_state(s, started["id"], ("stopped", "done"))
    check(run is not None and run["state"] == "stopped", f"the stop button stops it: {run}")

    status, short = s.request("/api/train", {"preset": "paper-mlp-bn", "lr": 0.5, "steps": 10, "path": "/tmp/not-this"})
    run = wait_state(s, short["id"], ("done", "failed"))
    check(run is not None and run["state"] == "done", f"a 10-step run finishes: {run}")
    status, r = s.request("/api/look", {**stroke_one(), "source": "run"})
    check(status == 200 and r["model"] == "run 2 (paper-mlp-bn)", f"a look through the latest run's weights: {r.get('model')}")
    status, saved = s.request(f"/api/runs/{short['id']}/save", {"path": "/tmp/not-this"})
    check(status == 200 and saved["weights"].startswith(saves + "/run-") and os.path.exists(saved["weights"]),
          f"save writes under --save-dir only: {saved}")
    if status == 200:
        summary = subprocess.run([bnlab, "summary", "--model", saved["spec"]], capture_output=True, text=True)
        check(summary.returncode == 0 and "bn1" in summary.stdout, "the saved spec rebuilds the network")
        predict = subprocess.run([bnlab, "eval", "--model", saved["spec"], "--weights", saved["weights"], "--limit-test", "100"],
                                 capture_output=True, text=True, cwd=REPO)
        check(predict.returncode == 0, f"the saved checkpoint loads: {predict.stderr.strip()}")
    status, served = s.request(f"/api/runs/{short['id']}/serve", {})
    check(status == 200 and s.request("/api/info")[1]["model"] == served["model"], f"a finished run can be served: {served}")
    check(look("eval", 1)["bn"][0]["name"] == "bn1", "looks now use the served run (paper-mlp-bn)")

    # A port in use: one line, non-zero.
    busy = subprocess.run([bnlab, "serve", "--port", str(s.port), "--weights", weights], capture_output=True, text=True, cwd=REPO, timeout=60)
    check(busy.returncode == 2 and busy.stderr.count("\n") == 1 and "--port" in busy.stderr,
          f"a port in use: exit 2, one line ({busy.stderr.strip()})")

    # Ctrl-C during a run: the run stops, the server exits 0.
    status, started = s.request("/api/train", {"preset": "seed", "steps": 100000})
    time.sleep(1)
    t0 = time.time()
    code, out, err = s.stop()
    check(code == 0 and "stopped" in out and err == "", f"Ctrl-C during a run: exit {code} in {time.time() - t0:.1f} s ({err.strip()})")

    # Nobody listening: the run stops by itself after --idle-stop seconds.
    s = Server(bnlab, "--idle-stop", "1")
    status, info = s.request("/api/info")
    check(info["model"] is None, "without --weights no model is served")
    check(s.request("/api/look", stroke_one())[0] == 409, "a look without a model: 409")
    status, started = s.request("/api/train", {"preset": "seed", "steps": 100000})
    time.sleep(4)  # no request, no event stream
    _, runs = s.request("/api/runs")
    check(runs[-1]["state"] == "stopped" and "no page listened" in runs[-1]["message"], f"an unwatched run stops: {runs[-1]}")
    code, _, _ = s.stop()
    check(code == 0, "the second server stops cleanly")

    # The event stream keeps a run alive while it is open; closing it lets the run stop.
    s = Server(bnlab, "--idle-stop", "1")
    status, started = s.request("/api/train", {"preset": "paper-mlp", "steps": 100000})
    stream = socket.create_connection((s.host, s.port))
    stream.sendall(f"GET /api/events HTTP/1.1\r\nHost: {s.host}:{s.port}\r\n\r\n".encode())
    time.sleep(3)
    got = stream.recv(65536).decode(errors="replace")
    check("text/event-stream" in got and '"type":"run"' in got, "GET /api/events streams server-sent events")
    _, runs = s.request("/api/runs")
    check(runs[-1]["state"] == "running", "a run with a listener keeps going past --idle-stop")
    stream.close()
    time.sleep(4)
    _, runs = s.request("/api/runs")
    check(runs[-1]["state"] == "stopped", f"closing the stream lets it stop: {runs[-1]}")
    stream = socket.create_connection((s.host, s.port))
    stream.sendall(f"GET /api/events HTTP/1.1\r\nHost: {s.host}:{s.port}\r\n\r\n".encode())
    time.sleep(0.5)
    t0 = time.time()
    code, _, err = s.stop()
    check(code == 0 and time.time() - t0 < 5, f"Ctrl-C with an event stream open: exit {code} in {time.time() - t0:.1f} s ({err.strip()})")
    stream.close()

    if failures:
        sys.exit(f"{len(failures)} failures")
    print("all passed")


main()
