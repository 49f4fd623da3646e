#!/usr/bin/env python3
"""The installed tapkit as an outside project uses it (issue 12, "Regression tests in C++").

  1. `cmake --install BUILD_DIR --prefix TMP/prefix`: the tools in bin/ (tapreplay among them; no
     test programs), the libraries, the headers under the paths users write (every project header
     an installed header includes is installed too), lib/cmake/tapkit with its config, version and
     targets files;
  2. nginx from fixtures/replay/nginx-base.conf.in on 127.0.98.3 and a free port;
  3. replay/examples/outside configured with CMAKE_PREFIX_PATH=TMP/prefix (find_package(tapkit)),
     built (one file), and run: its tests replay captures they write against that nginx, one
     matching, one differing on exactly GET /health, and one that serves nginx's answer with the
     mock server (replay/serve_testing.h) and checks the mock's answer with its own libcurl
     client against what nginx sent that client;
  4. README.md's test code is the example's, character for character.

A missing nginx, cmake or ninja is a skip (exit 77), a failure under CI=true. No root needed.
Build the installed targets first: `cmake --build BUILD_DIR --target tapkit_package`.

  outside_test.py SOURCE_DIR BUILD_DIR [CMAKE_ARG...]

CMAKE_ARGs go to the outside project's configuration (ctest passes the build's compiler and its
sanitizer flags).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from e2e_support import NGINX_USER, fail, free_port, skip, wait_for  # noqa: E402

ADDRESS = "127.0.98.3"


def run(what, args, **kwargs):
    proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          **kwargs)
    if proc.returncode != 0:
        fail(f"{what}: exit {proc.returncode}:\n{proc.stdout}")
    return proc.stdout


def check_install(prefix):
    """The installed tree: tools, no tests, headers closed under their includes, the package."""
    bin_dir = os.path.join(prefix, "bin")
    tools = sorted(os.listdir(bin_dir))
    for tool in ("tapcat", "taprec", "tapfilter", "tapreplay"):
        if tool not in tools:
            fail(f"{tool} is not installed in {bin_dir}: {tools}")
    tests = [t for t in tools if "test" in t or "bench" in t or t.startswith("fuzz_")]
    if tests:
        fail(f"test programs are installed in {bin_dir}: {tests}")
    version = run("tapcat --version", [os.path.join(bin_dir, "tapcat"), "--version"])
    include = os.path.join(prefix, "include")
    headers = []
    for root, _, files in os.walk(include):
        headers += [os.path.relpath(os.path.join(root, f), include) for f in files]
    for must in ("replay/replay.h", "replay/testing.h", "replay/compare.h", "replay/report.h",
                 "replay/serve.h", "replay/serve_testing.h", "replay/match.h",
                 "format/exchange.h", "format/writer.h", "format/program.h",
                 "format/tap_generated.h"):
        if must not in headers:
            fail(f"{must} is not installed in {include}")
    for h in headers:
        with open(os.path.join(include, h)) as f:
            for inc in re.findall(r'^#include "((?:format|replay|controlplane)/[^"]+)"', f.read(),
                                  re.M):
                if inc not in headers:
                    fail(f"{h} includes {inc}, which is not installed")
    package = os.path.join(prefix, "lib", "cmake", "tapkit")
    for f in ("tapkitConfig.cmake", "tapkitConfigVersion.cmake", "tapkitTargets.cmake",
              "tapkitTestingTargets.cmake"):
        if not os.path.exists(os.path.join(package, f)):
            fail(f"{f} is not installed in {package}")
    with open(os.path.join(package, "tapkitConfigVersion.cmake")) as f:
        m = re.search(r'set\(PACKAGE_VERSION "([^"]+)"\)', f.read())
    if not m or m.group(1) not in version:
        fail(f"the package's version {m and m.group(1)} is not tapcat's: {version.strip()}")
    return len(headers)


def start_nginx(source, work):
    port = free_port(ADDRESS)
    with open(os.path.join(source, "fixtures", "replay", "nginx-base.conf.in")) as f:
        conf = f.read()
    for key, value in (("@NGINX_USER@", NGINX_USER), ("@WORK@", work),
                       ("@WWW@", os.path.join(source, "fixtures", "replay", "www")),
                       ("@ADDRESS@", ADDRESS), ("@PORT@", str(port))):
        conf = conf.replace(key, value)
    path = os.path.join(work, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    run("nginx", ["nginx", "-e", os.path.join(work, "error.log"), "-c", path])
    wait_for(lambda: os.path.exists(os.path.join(work, "nginx.pid")), "nginx's pid file")
    return path, f"http://{ADDRESS}:{port}"


def logged(work):
    """The request lines in nginx's access log."""
    with open(os.path.join(work, "access.log")) as f:
        return [line.split('"')[1] for line in f if '"' in line]


def readme_region(text, begin, end):
    start = text.find(begin)
    stop = text.find(end, start)
    if start < 0 or stop < 0:
        return None
    return text[start + len(begin):stop].strip("\n")


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    source, build = (os.path.abspath(a) for a in sys.argv[1:3])
    cmake_args = sys.argv[3:]
    for tool in ("nginx", "cmake", "ninja"):
        if not shutil.which(tool):
            skip("outside_test", f"{tool} is missing")
    example = os.path.join(source, "replay", "examples", "outside")

    # README.md shows the example's test code as it is.
    with open(os.path.join(example, "capture_test.cc")) as f:
        code = readme_region(f.read(), "// [README: test]\n", "// [README: end]")
    with open(os.path.join(source, "README.md")) as f:
        readme = f.read()
    if code is None or f"```cpp\n{code}\n```" not in readme:
        fail("README.md does not show replay/examples/outside/capture_test.cc's code between "
             "[README: test] and [README: end]")

    with tempfile.TemporaryDirectory(prefix="tapkit-outside.") as work:
        os.chmod(work, 0o755)
        prefix = os.path.join(work, "prefix")
        installed = subprocess.run(["cmake", "--install", build, "--prefix", prefix],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if installed.returncode != 0:
            fail(f"cmake --install {build}: exit {installed.returncode} (is the tapkit_package "
                 f"target built?):\n{installed.stdout[-2000:]}")
        count = check_install(prefix)
        print(f"installed: {count} headers", flush=True)

        configure = ["cmake", "-S", example, "-B", os.path.join(work, "build"), "-G", "Ninja",
                     f"-DCMAKE_PREFIX_PATH={prefix}", "-DCMAKE_BUILD_TYPE=Release"] + cmake_args
        if shutil.which("ccache"):
            configure.append("-DCMAKE_CXX_COMPILER_LAUNCHER=ccache")
        run("configuring the outside project", configure)
        run("building the outside project",
            ["cmake", "--build", os.path.join(work, "build"), "-j2"])

        conf, target = start_nginx(source, work)
        try:
            env = dict(os.environ, TAPKIT_TARGET=target, TEST_TMPDIR=work + "/")
            out = run("the outside project's test",
                      [os.path.join(work, "build", "capture_test")], env=env)
            # nginx logs a request once its response is out: wait for the last line.
            wait_for(lambda: len(logged(work)) >= 3, "nginx's access log")
        finally:
            subprocess.run(["nginx", "-e", os.path.join(work, "error.log"), "-c", conf, "-s",
                            "stop"], check=False)
        if "[  PASSED  ] 3 tests." not in out:
            fail(f"the outside project's test did not pass its 3 tests:\n{out}")
        requests = logged(work)
        # Two replayed, one from the mock test's own client; none of the mock's.
        if requests != ["GET /health HTTP/1.1"] * 3:
            fail(f"nginx did not receive the three GET /health: {requests}")
    print("ok: installed, found, built and replayed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
