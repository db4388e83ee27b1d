"""The page of `bnlab serve` in real headless Chromium (Debian's chromium and chromium-driver
through python3-selenium): draw a "1" with the mouse, check the prediction against
`bnlab predict` on the very pixels the page sent, flip the train/eval switch and draw new
batch-mates (eval: nothing moves; training: the numbers move), start a short training run and
watch its curve grow; then save a screenshot.

usage: serve_browser_test.py path/to/bnlab screenshot.png"""
import json
import os
import subprocess
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from serve_common import REPO, Server, train_model, workdir

failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    # The README's screenshot: BNLAB_SERVE_WINDOW=1280,1500 BNLAB_SERVE_SCALE=0.7
    window = os.environ.get("BNLAB_SERVE_WINDOW", "1280,1500")
    scale = os.environ.get("BNLAB_SERVE_SCALE", "1")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={window}",
                f"--force-device-scale-factor={scale}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def main():
    bnlab, screenshot = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    work = workdir()
    weights = train_model(bnlab, work, steps=int(os.environ.get("BNLAB_SERVE_TEST_STEPS", "80")))
    server = Server(bnlab, "--weights", weights, "--save-dir", os.path.join(work, "saves"))
    driver = browser()
    wait = WebDriverWait(driver, 120, poll_frequency=0.05)
    try:
        driver.get(server.url + "/")
        wait.until(lambda d: d.find_element(By.ID, "model-label").text.startswith("seed"))
        looks = lambda: int(driver.execute_script("return +(document.body.dataset.looks || 0)"))
        # Full precision from the page's last answer (the bars' labels show 4 decimals).
        probs = lambda: driver.execute_script("return state.lastLook.probabilities")

        def after_look(action):
            before = looks()
            action()
            wait.until(lambda d: looks() > before)
            return probs()

        # A "1": one stroke down the middle of the pad, with the mouse.
        pad = driver.find_element(By.ID, "pad")
        def draw():
            chain = ActionChains(driver).move_to_element_with_offset(pad, 6, -95).click_and_hold()
            for _ in range(19):
                chain.move_by_offset(-1, 10)
            chain.release().perform()
        p_eval = after_look(draw)
        shown = int(driver.find_element(By.ID, "predicted").text)
        check(shown == max(range(10), key=lambda k: p_eval[k]), f"the page shows its most probable class: {shown}")
        check(shown == 1, f"a stroke shaped like a 1 is read as 1 (probabilities {p_eval})")

        # The same pixels through `bnlab predict`: the same class and probabilities.
        sent = driver.execute_script("return drawingPixels()")
        pgm = os.path.join(work, "drawn.pgm")
        with open(pgm, "wb") as f:
            f.write(b"P5 %d %d 255\n" % (sent["width"], sent["height"]) + bytes(sent["pixels"]))
        out = subprocess.run([bnlab, "predict", "--weights", weights, "--json", "--top", "10", pgm],
                             check=True, capture_output=True, text=True).stdout
        predicted = json.loads(out)["predictions"][0]
        check(predicted["class"] == shown, f"bnlab predict on the page's pixels agrees: {predicted['class']}")
        want = {t["class"]: t["probability"] for t in predicted["top"]}
        check(all(abs(p_eval[k] - want[k]) < 1e-5 for k in range(10)), "and so do its ten probabilities")
        check(driver.find_element(By.ID, "prob-1").text == f"{p_eval[1]:.4f}", "the bars are labelled with them")
        check(len(driver.find_elements(By.CSS_SELECTOR, "#layers .layer")) >= 10, "every layer's activations are drawn")
        check(len(driver.find_elements(By.CSS_SELECTOR, "#hist-before rect")) == 40, "the BN histogram is drawn")

        # Evaluation mode: new batch-mates move nothing.
        new_mates = driver.find_element(By.ID, "new-mates")
        check(after_look(new_mates.click) == p_eval, "eval mode: new batch-mates leave the probabilities as they were")
        caption = driver.find_element(By.ID, "mode-caption").text
        check("running mean" in caption, f"the page says what eval mode does: {caption}")
        # Training mode: the digit is normalized with its batch-mates.
        switch = driver.find_element(By.ID, "train-mode")
        p_train = after_look(switch.click)
        check(p_train != p_eval, f"training mode changes the numbers: {p_train[1]:.6f} vs {p_eval[1]:.6f} for class 1")
        caption = driver.find_element(By.ID, "mode-caption").text
        check("63 test images" in caption and "batch of 64" in caption, f"the page says how many batch-mates: {caption}")
        p_train2 = after_look(new_mates.click)
        check(p_train2 != p_train, "training mode: new batch-mates move the prediction")
        check(after_look(switch.click) == p_eval, "back to eval mode: the eval numbers exactly (looking changed no statistics)")

        # Train live: a short run of the seed network, its loss curve growing.
        Select(driver.find_element(By.ID, "preset")).select_by_visible_text("seed")
        steps = driver.find_element(By.ID, "steps")
        steps.clear()
        steps.send_keys("60")
        driver.find_element(By.ID, "start").click()
        points = lambda: len((driver.execute_script(
            "const l = document.querySelector('#loss-chart polyline'); return l ? l.getAttribute('points') : ''") or "").split())
        wait.until(lambda d: points() >= 2)
        first = points()
        wait.until(lambda d: points() > first)
        check(points() > first >= 2, f"the loss curve grows while the run trains ({first} then {points()} points)")
        run_state = lambda: driver.execute_script("const c = document.querySelector('#runs tbody tr .state'); return c ? c.textContent : ''")
        wait.until(lambda d: run_state().startswith("done"))
        check(len(driver.find_elements(By.CSS_SELECTOR, "#pct-chart polyline")) == 3, "the percentile chart has its three curves")
        check(len(driver.find_elements(By.CSS_SELECTOR, "#runs button.serve")) == 1, "a finished run offers to be served")
        after_look(switch.click)  # training mode for the screenshot
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(screenshot)
        print(f"screenshot: {screenshot}")
    finally:
        driver.quit()
        code, _, err = server.stop()
        check(code == 0, f"the server stops cleanly ({err.strip()})")
    if failures:
        sys.exit(f"{len(failures)} failures")
    print("all passed")


main()
