#!/usr/bin/python3
"""CI's check of bench/compare: a --quick run of two rounds end to end (bnlab, PyTorch, the
machine's limits, the targets), its report's sections and its JSON, and how it merges rounds.
Times nothing: the figures are not judged.

    bench/compare_test.py BUILD_DIR
"""
import importlib.machinery
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def fail(msg):
    sys.exit("compare_test: " + msg)


def check_best_of():
    """The rounds' merge: the highest images/s, the lowest _ms, anything else from the first round."""
    loader = importlib.machinery.SourceFileLoader("compare", os.path.join(HERE, "compare"))
    spec = importlib.util.spec_from_loader("compare", loader)
    compare = importlib.util.module_from_spec(spec)
    loader.exec_module(compare)
    rounds = [{"train": {"64": {"images_per_s": 10.0, "step_ms": 6.4, "final_loss": 0.5}}, "bn": {"copy_ms": 0.3},
               "shape": [1, 2], "fused": True},
              {"train": {"64": {"images_per_s": 30.0, "step_ms": 2.1, "final_loss": 0.7}}, "bn": {"copy_ms": 0.4},
               "shape": [3, 4], "fused": False}]
    want = {"train": {"64": {"images_per_s": 30.0, "step_ms": 2.1, "final_loss": 0.5}}, "bn": {"copy_ms": 0.3},
            "shape": [1, 2], "fused": True}
    got = compare.best_of(rounds)
    if got != want:
        fail(f"best_of gave {got}, expected {want}")


def main():
    check_best_of()
    build = os.path.abspath(sys.argv[1])
    with tempfile.TemporaryDirectory(prefix="bnlab-compare-test-") as tmp:
        raw = os.path.join(tmp, "compare.json")
        r = subprocess.run([os.path.join(HERE, "compare"), "--quick", "--steps", "2", "--epoch-steps", "3",
                            "--threads", "2", "--rounds", "2", "--build", build, "--require-torch", "--json", raw],
                           capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            fail(f"compare exited {r.returncode}:\n{r.stderr[-3000:]}")
        report = r.stdout
        with open(raw) as f:
            data = json.load(f)

    if data.get("rounds") != 2 or "each figure the best of 2 rounds" not in report:
        fail(f"rounds {data.get('rounds')}; the report does not say how its figures were chosen")

    # The machine's limits: positive, and all threads at least one thread's worth.
    fma, copy = data["machine"]["fma"], data["machine"]["copy"]
    if not 0 < fma["gflops_1thread"] <= fma["gflops_all"] * 1.05:
        fail(f"FMA throughput {fma}")
    if not (copy["gbs_1thread"] > 0 and copy["gbs_all"] > 0):
        fail(f"copy bandwidth {copy}")
    if not data["machine"]["cpu"]["isa"]:
        fail("no instruction sets listed")

    # The FLOP count comes from the network: the same multiply-adds as `bnlab summary` prints.
    summary = subprocess.run([os.path.join(build, "bnlab"), "summary", "--model", "seed"], capture_output=True,
                             text=True, check=True).stdout
    macs = int(re.search(r"MACs per image: ([\d,]+)", summary).group(1).replace(",", ""))
    if data["bnlab"]["macs_per_image"] != macs:
        fail(f"macs_per_image {data['bnlab']['macs_per_image']}, bnlab summary says {macs}")

    # The 1-thread run for the scaling rows.
    one = data.get("bnlab_1thread", {})
    if not one.get("train", {}).get("64", {}).get("images_per_s"):
        fail("no 1-thread training figure")

    # The report: the limits section with its share of the peak, and every target with a verdict.
    for heading in ("### Against this machine's limits", "### Targets (issue 18)"):
        if heading not in report:
            fail(f"no '{heading}' in the report:\n{report}")
    share = re.search(r"\| training step, batch 64, 72 MFLOP an image \(images/s\) \| [\d,]+ \| [\d,]+ \| "
                      r"[\d.]+x \| ([\d.]+)% \|", report)
    if not share:
        fail("no training row against the FMA peak:\n" + report)
    expected = 100 * data["bnlab"]["train"]["64"]["images_per_s"] * 6 * macs / 1e9 / fma["gflops_all"]
    if abs(float(share.group(1)) - expected) > 0.051:  # printed to one decimal
        fail(f"share of the peak {share.group(1)}%, expected {expected:.1f}%")
    targets = report.split("### Targets (issue 18)")[1]
    verdicts = re.findall(r"^\| (.+?) \| (.+?) \| (yes|\*\*misses\*\*|not measured) \|$", targets, re.M)
    if len(verdicts) != 9:
        fail(f"{len(verdicts)} target rows with a verdict, not 9:\n{targets}")
    print(f"compare_test: ok ({len(verdicts)} targets, FMA {fma['gflops_all']:.0f} GFLOP/s, "
          f"{share.group(1)}% of it in training)")


if __name__ == "__main__":
    main()
