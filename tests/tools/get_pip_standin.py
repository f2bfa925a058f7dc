"""Stand-in for the pip bootstrap script ansible-test downloads from its own CI file host.

ansible-test creates one virtualenv per sanity test and, to put pip into it, runs a get-pip
script it fetches from a host outside the package registries. This stand-in does the same job
with what Python and PyPI provide: `ensurepip` puts the bundled pip into the venv, then that pip
installs the exact pip version (and any other packages) ansible-test asked for, from PyPI.
`make sanity` copies it to ~/.ansible/test/cache/get_pip_<version>.py.
"""

import subprocess
import sys

IGNORED = {"--no-setuptools", "--no-wheel"}


def main():
    # in a child process: ensurepip turns pip's configuration off in its own process environment,
    # and the install below needs the machine's pip configuration (index, CA bundle)
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"])
    args = [a for a in sys.argv[1:] if a not in IGNORED]
    if args:
        subprocess.check_call([sys.executable, "-m", "pip", "install", *args])


if __name__ == "__main__":
    main()
