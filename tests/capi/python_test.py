"""The ctypes package (python/moat) against `moat run --tokens`: the same prompt ids,
seed and options give the same ids, through moat.generate's callback and iterator
forms. Run by CTest: python_test.py MOAT_CLI MODEL (with PYTHONPATH=python and
MOAT_LIBRARY set); exits 0 when every check holds."""

import subprocess
import sys

import moat

CLI_DEFAULTS = ["--top-k", "40", "--top-p", "0.95", "--min-p", "0.05", "--repeat-penalty", "1",
                "--repeat-last-n", "64", "--presence-penalty", "0", "--frequency-penalty", "0"]


def cli_ids(cli, model, prompt, n, seed, temp):
    out = subprocess.run([cli, "run", "-m", model, "--tokens", ",".join(map(str, prompt)), "-n", str(n),
                          "--seed", str(seed), "--temp", str(temp)] + CLI_DEFAULTS,
                         check=True, capture_output=True, text=True).stdout
    return [int(t) for t in out.split()]


def main():
    cli, path = sys.argv[1], sys.argv[2]
    failures = []

    def check(what, got, want):
        if got != want:
            failures.append(f"{what}: got {got!r}, want {want!r}")

    assert "." in moat.version()
    assert ("cpu" in [d for d, _ in moat.devices()])
    model = moat.Model(path)
    prompt = model.tokenize("In the beginning God created")
    check("detokenize", model.detokenize(prompt, render_special=False), b"In the beginning God created")
    for seed, temp in ((1, 0.0), (7, 0.8)):
        want = cli_ids(cli, path, prompt, 24, seed, temp)
        options = dict(temperature=temp, seed=seed)
        pieces = []
        ids, stop = moat.generate(moat.Session(model, "cpu", context=64), prompt, 24,
                                  callback=lambda t, piece: pieces.append(piece) and False, **options)
        check(f"callback ids, temp {temp}", ids, want)
        check(f"callback pieces, temp {temp}", b"".join(pieces), model.detokenize(ids, render_special=False))
        check(f"stop reason, temp {temp}", stop, "limit" if len(want) == 24 else "eos")
        iterated = [t for t, _ in moat.generate(moat.Session(model, "cpu", context=64), prompt, 24, **options)]
        check(f"iterator ids, temp {temp}", iterated, want)

    # errors are exceptions with the library's message
    try:
        moat.Model("/nonexistent/m.gguf")
        failures.append("a missing file raised nothing")
    except moat.UserError as e:
        check("missing file message names it", "/nonexistent/m.gguf" in str(e), True)
    try:
        moat.Session(model, "nodevice:0")
        failures.append("an unknown device raised nothing")
    except moat.UserError as e:
        check("unknown device message names it", "nodevice:0" in str(e), True)

    for f in failures:
        print("FAIL:", f)
    print(f"{'FAILED' if failures else 'passed'}: python ctypes package")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
