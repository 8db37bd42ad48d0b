#!/usr/bin/env python3
# env-mirror.py ROOT PORT ELSEWHERE_PORT: the package registries of test-envs.sh, as files
# for a loopback http.server on PORT: a Debian repository (ROOT/deb, indexed by the test
# with dpkg-scanpackages), an npm registry (ROOT/npm-meta/NAME documents pointing at tarballs
# made by `npm pack` in ROOT/npm) and a PyPI simple index (ROOT/pypi) with a wheel written as
# the zip it is (METADATA, WHEEL, RECORD, an entry point). One more index entry,
# clawbox-elsewhere, points at a wheel on ELSEWHERE_PORT: a build that follows it must be
# refused by the build sandbox's proxy.
import base64, hashlib, json, os, sys, zipfile

root, port, elsewhere = sys.argv[1], sys.argv[2], sys.argv[3]

tgz_name = "clawbox-hello-npm-1.0.0.tgz"
data = open(os.path.join(root, "npm", tgz_name), "rb").read()
meta = {"name": "clawbox-hello-npm", "dist-tags": {"latest": "1.0.0"},
        "versions": {"1.0.0": {"name": "clawbox-hello-npm", "version": "1.0.0",
                               "bin": {"clawbox-hello-npm": "bin/hello.js"},
                               "dist": {"tarball": "http://127.0.0.1:%s/npm/%s" % (port, tgz_name),
                                        "shasum": hashlib.sha1(data).hexdigest()}}}}
os.makedirs(os.path.join(root, "npm-meta"), exist_ok=True)
with open(os.path.join(root, "npm-meta", "clawbox-hello-npm"), "w") as f:
    json.dump(meta, f)

def wheel(name, module, text):
    dist = name.replace("-", "_")
    files = {
        module + ".py": "def main():\n    print(%r)\n" % text,
        "%s-1.0.dist-info/METADATA" % dist: "Metadata-Version: 2.1\nName: %s\nVersion: 1.0\n" % name,
        "%s-1.0.dist-info/WHEEL" % dist:
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        "%s-1.0.dist-info/entry_points.txt" % dist:
            "[console_scripts]\n%s = %s:main\n" % (name, module),
    }
    rec = []
    for p, c in files.items():
        h = base64.urlsafe_b64encode(hashlib.sha256(c.encode()).digest()).rstrip(b"=").decode()
        rec.append("%s,sha256=%s,%d" % (p, h, len(c)))
    rec.append("%s-1.0.dist-info/RECORD,," % dist)
    files["%s-1.0.dist-info/RECORD" % dist] = "\n".join(rec) + "\n"
    fname = "%s-1.0-py3-none-any.whl" % dist
    with zipfile.ZipFile(os.path.join(root, "pypi", fname), "w") as z:
        for p, c in files.items():
            z.writestr(p, c)
    return fname

def index(name, href):
    d = os.path.join(root, "pypi", "simple", name)
    os.makedirs(d, exist_ok=True)
    fname = href.rsplit("/", 1)[-1]
    with open(os.path.join(d, "index.html"), "w") as f:
        f.write('<html><body><a href="%s">%s</a></body></html>\n' % (href, fname))

os.makedirs(os.path.join(root, "pypi", "simple"), exist_ok=True)
index("clawbox-hello-py", "../../" + wheel("clawbox-hello-py", "clawbox_hello_py", "hello from pip"))
index("clawbox-elsewhere",
      "http://127.0.0.1:%s/clawbox_elsewhere-1.0-py3-none-any.whl" % elsewhere)
